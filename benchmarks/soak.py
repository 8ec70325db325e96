"""Staying up: many clients for a long while against a real local `scratchlm serve`, with random
lengths, sampling settings, cancellations and bad requests mixed in.

    python benchmarks/soak.py [--model out/model.safetensors] [--clients 32] [--minutes 10]

Each client repeats, at random: a streamed chat completion (most often), a whole one, a stream it
hangs up on after a few chunks, or a bad request (malformed JSON, a wrong field, a prompt over the
window, a body over the limit, an unknown route). Every answer is checked: a valid request must
end well (status 200, a finish_reason, `data: [DONE]` for a stream), a bad one must get its 4xx
error. Every `--window` seconds it prints one key=value line: requests and failures in the window,
tokens/s, time to first token and inter-token latency (p50/p99), the server's resident memory.
At the end, the totals: failed valid requests (the target: 0), unexpected answers to bad requests,
error lines in the server's log, and the resident memory after the warm-up (the first window) and
at the end, with its growth.
"""

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from scratchlm import chat_format
from scratchlm.train import BUNDLED_DATA, demo_options, train_examples

QUESTIONS = [
    chat_format.split_answer(c)[0].removeprefix("User: ").removesuffix(" Assistant:")
    for c in json.loads((BUNDLED_DATA / "chat.json").read_text())
]
CHAT = "v1/chat/completions"
BAD = [  # (route, body, the status it must get)
    (CHAT, b'{"model": "m", "messages": [', 400),
    (CHAT, {"model": "m", "messages": [{"role": "user", "content": "Why?"}], "top_p": 2}, 400),
    (CHAT, {"model": "m", "messages": [{"role": "user", "content": "why " * 200}]}, 400),
    (CHAT, {"model": "m", "messages": [], "n": 99}, 400),
    (
        CHAT,
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "pad": "x" * 300_000},
        413,
    ),
    ("v1/nowhere", {"model": "m"}, 404),
]


class Tally:
    """What the clients saw, window by window (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.window = self._empty()
        self.failed, self.bad_wrong, self.requests = 0, 0, 0

    @staticmethod
    def _empty():
        return {"requests": 0, "failed": 0, "tokens": 0, "ttft": [], "gaps": []}

    def add(self, ok: bool, tokens=0, ttft=None, gaps=(), valid=True):
        with self.lock:
            w = self.window
            w["requests"] += 1
            w["failed"] += not ok
            w["tokens"] += tokens
            if ttft is not None:
                w["ttft"].append(ttft)
            w["gaps"] += list(gaps)
            self.requests += 1
            if not ok:
                if valid:
                    self.failed += 1
                else:
                    self.bad_wrong += 1

    def take(self) -> dict:
        with self.lock:
            window, self.window = self.window, self._empty()
        return window


def body_of(rng: random.Random, stream: bool) -> dict:
    sampled = rng.random() < 0.5
    return {
        "model": "scratchlm",
        "messages": [{"role": "user", "content": rng.choice(QUESTIONS)}],
        "max_tokens": rng.randint(1, 128),
        "ignore_eos": rng.random() < 0.5,
        "temperature": 0.8 if sampled else 0.0,
        "seed": rng.randrange(1000) if sampled else None,
        "stream": stream,
        "stream_options": {"include_usage": True} if stream else None,
    }


def streamed(http, tally: Tally, body: dict, hang_up_after=None) -> None:
    start, arrivals, tokens, reason, done = time.perf_counter(), [], 0, None, False
    try:
        with http.stream("POST", CHAT, json=body) as r:
            if r.status_code != 200:
                tally.add(False)
                return
            for line in r.iter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    chunk = json.loads(line[6:])
                    choice = chunk["choices"][0] if chunk.get("choices") else {}
                    tokens = (chunk.get("usage") or {}).get("completion_tokens", tokens)
                    if choice.get("delta", {}).get("content"):
                        arrivals.append(time.perf_counter())
                        if hang_up_after is not None and len(arrivals) >= hang_up_after:
                            break  # closing the stream hangs up
                    reason = choice.get("finish_reason") or reason
    except httpx.HTTPError:
        tally.add(False)
        return
    ok = hang_up_after is not None or (done and reason in ("stop", "length"))
    ttft = arrivals[0] - start if arrivals else None
    tally.add(ok, tokens, ttft, np.diff(arrivals))


def client(url: str, seed: int, until: float, tally: Tally) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=120) as http:
        while time.monotonic() < until:
            kind = rng.random()
            if kind < 0.7:
                streamed(http, tally, body_of(rng, True))
            elif kind < 0.8:
                streamed(http, tally, body_of(rng, True), hang_up_after=rng.randint(1, 3))
            elif kind < 0.9:
                try:
                    r = http.post(CHAT, json=body_of(rng, False))
                    ok = r.status_code == 200 and r.json()["choices"][0]["finish_reason"]
                except httpx.HTTPError:
                    ok = False
                tally.add(bool(ok))
            else:
                route, body, status = rng.choice(BAD)
                try:
                    if isinstance(body, bytes):
                        r = http.post(route, content=body)
                    else:
                        r = http.post(route, json=body)
                    ok = r.status_code == status and "error" in r.json()
                except httpx.HTTPError:
                    ok = False
                tally.add(ok, valid=False)


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("out/model.safetensors"))
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=30.0, help="seconds per printed line")
    args = parser.parse_args()
    if not args.model.exists():
        print(f"{args.model} is missing: training the demo model first (make demo does the same)")
        train_examples(demo_options(args.model))
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (read at the end)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scratchlm", "serve", str(args.model), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    url = re.search(r"http://\S+/", proc.stdout.readline()).group(0)
    tally, t0 = Tally(), time.monotonic()
    until = t0 + 60 * args.minutes
    threads = [
        threading.Thread(target=client, args=(url, seed, until, tally), daemon=True)
        for seed in range(args.clients)
    ]
    for t in threads:
        t.start()
    print(
        f"model={args.model} clients={args.clients} minutes={args.minutes} rss_start_mib={rss_mib(proc.pid):.1f}"
    )
    rss_warm = None
    ms = lambda xs, q: f"{1000 * np.percentile(xs, q):.1f}" if len(xs) else "nan"  # noqa: E731
    try:
        while time.monotonic() < until:
            time.sleep(min(args.window, max(0.0, until - time.monotonic())))
            w, rss = tally.take(), rss_mib(proc.pid)
            rss_warm = rss if rss_warm is None else rss_warm
            print(
                f"t_s={time.monotonic() - t0:.0f} requests={w['requests']} failed={w['failed']} "
                f"tokens_per_s={w['tokens'] / args.window:.0f} "
                f"ttft_p50_ms={ms(w['ttft'], 50)} ttft_p99_ms={ms(w['ttft'], 99)} "
                f"inter_token_p50_ms={ms(w['gaps'], 50)} inter_token_p99_ms={ms(w['gaps'], 99)} "
                f"rss_mib={rss:.1f}",
                flush=True,
            )
        for t in threads:
            t.join(180)
        rss_end = rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
    log.seek(0)
    errors = [line for line in log if "level=error" in line or "Traceback" in line]
    print(
        f"total requests={tally.requests} failed_valid={tally.failed} bad_answered_wrong="
        f"{tally.bad_wrong} server_error_lines={len(errors)} rss_warm_mib={rss_warm:.1f} "
        f"rss_end_mib={rss_end:.1f} rss_growth={100 * (rss_end / rss_warm - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()
