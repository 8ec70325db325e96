"""Serving throughput and latency: streaming clients against a real local `scratchlm serve`.

    python benchmarks/serve.py [--model out/model.safetensors] [--max-tokens 64] [--rounds 3]
                               [--repeats 3]

Starts the server on the demo model (`make demo` writes it; trained here when it is missing) on a
free local port, then sends chat completions with `stream: true`:

- sequential: 16 requests one after another, the baseline of continuous batching;
- clients=1, 8, 16, 32: that many clients at once (they start together), each sending `--rounds`
  requests one after the other.

Every request asks a bundled question and generates exactly `--max-tokens` tokens (`ignore_eos`,
so that all runs do the same work). Prints key=value lines: total generated tokens/s over the wall
time, time to first token (TTFT: from sending the request to the first text) and inter-token
latency (the gaps between streamed chunks, which carry the tokens of up to 10 ms:
`FLUSH_INTERVAL_S`), p50 and p99, the server's CPU time per token (all its threads: a measure of
its work that other programs on the machine disturb less than they disturb the times), and `gain`:
the tokens/s over sequential. With --repeats N every
mode runs N times, interleaved, and the run with the best tokens/s of each is printed.
The clients run in this process, on the same machine as the server.
"""

import argparse
import json
import os
import re
import subprocess
import sys
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
CLIENTS = (1, 8, 16, 32)


def start_server(model: Path, *args: str):
    proc = subprocess.Popen(
        [sys.executable, "-m", "scratchlm", "serve", str(model), "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    found = re.search(r"http://\S+/", proc.stdout.readline())
    if not found:
        proc.kill()
        sys.exit("the server did not start")
    return proc, found.group(0)


def one_request(http: httpx.Client, question: str, max_tokens: int) -> dict:
    """One streamed chat completion -> its start, the arrival time of each chunk of text, its
    token count."""
    body = {
        "model": "scratchlm",
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start, arrivals, tokens = time.perf_counter(), [], 0
    with http.stream("POST", "v1/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                arrivals.append(time.perf_counter())
    return {"start": start, "arrivals": arrivals, "tokens": tokens}


def cpu_seconds(pid: int) -> float:
    """The CPU time the process has used so far (user + system, all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(http, pid: int, clients: int, requests_each: int, max_tokens: int) -> dict:
    """`clients` threads at once, each sending `requests_each` requests in turn -> the figures."""
    results, lock = [], threading.Lock()
    start = threading.Barrier(clients)

    def client(c):
        start.wait()
        for r in range(requests_each):
            question = QUESTIONS[(c * requests_each + r) % len(QUESTIONS)]
            result = one_request(http, question, max_tokens)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0, cpu0 = time.perf_counter(), cpu_seconds(pid)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    return figures(results, seconds, cpu)


def figures(results: list[dict], seconds: float, cpu: float) -> dict:
    ttft = [r["arrivals"][0] - r["start"] for r in results]
    gaps = np.concatenate([np.diff(r["arrivals"]) for r in results])
    tokens = sum(r["tokens"] for r in results)
    ms = lambda xs, q: f"{1000 * np.percentile(xs, q):.1f}"  # noqa: E731
    return {
        "requests": len(results),
        "tokens": tokens,
        "seconds": f"{seconds:.2f}",
        "tokens_per_s": round(tokens / seconds, 1),
        "ttft_p50_ms": ms(ttft, 50),
        "ttft_p99_ms": ms(ttft, 99),
        "inter_token_p50_ms": ms(gaps, 50),
        "inter_token_p99_ms": ms(gaps, 99),
        "server_cpu_ms_per_token": f"{1000 * cpu / tokens:.3f}",
    }


def decode_steps(model_path: Path, repeats: int) -> dict[int, float]:
    """The best time of one decoding step for B rows (contexts of 10 to 40 tokens) -> {B: s}."""
    from threadpoolctl import threadpool_limits

    from scratchlm.generate import KVCacheDecoder
    from scratchlm.model import load_model

    model = load_model(model_path)
    prompt = model.tokenizer.encode(chat_format.reply_prompt([("user", QUESTIONS[0])]))
    best = {}
    with threadpool_limits(1, user_api="blas"):  # as the server runs
        for _ in range(repeats):
            for rows in (1, *CLIENTS[1:]):
                decoder = KVCacheDecoder(model, capacity=rows)
                tokens = decoder.start([prompt[: 5 + b % 5] for b in range(rows)]).argmax(-1)
                for _ in range(5):
                    decoder.advance(tokens)
                t0 = time.perf_counter()
                for _ in range(25):
                    decoder.advance(tokens)
                best[rows] = min(best.get(rows, 1.0), (time.perf_counter() - t0) / 25)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("out/model.safetensors"))
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="requests per concurrent client")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.model.exists():
        print(f"{args.model} is missing: training the demo model first (make demo does the same)")
        train_examples(demo_options(args.model))
    steps = decode_steps(args.model, max(args.repeats, 3))
    for rows, seconds in steps.items():
        ceiling = rows * steps[1] / seconds
        print(f"decode_step rows={rows} ms={1000 * seconds:.3f} decode_ceiling={ceiling:.1f}")
    proc, url = start_server(args.model)
    # One client for all threads, made before any timing: making one costs tens of milliseconds.
    limits = httpx.Limits(max_connections=max(CLIENTS), max_keepalive_connections=max(CLIENTS))
    http = httpx.Client(base_url=url, timeout=600, limits=limits)
    try:
        run(http, proc.pid, max(CLIENTS), 1, 8)  # warm-up: every connection opened once
        modes = {"sequential": (1, 16)} | {f"clients={n}": (n, args.rounds) for n in CLIENTS}
        best = {}
        for _ in range(args.repeats):
            for mode, (clients, each) in modes.items():
                result = run(http, proc.pid, clients, each, args.max_tokens)
                if mode not in best or result["tokens_per_s"] > best[mode]["tokens_per_s"]:
                    best[mode] = result
        print(
            f"model={args.model} max_tokens={args.max_tokens} rounds={args.rounds} repeats={args.repeats}"
        )
        base = best["sequential"]["tokens_per_s"]
        for mode, result in best.items():
            gain = result["tokens_per_s"] / base
            print(
                f"mode={mode} "
                + " ".join(f"{k}={v}" for k, v in result.items())
                + f" gain={gain:.1f}"
            )
    finally:
        http.close()
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
