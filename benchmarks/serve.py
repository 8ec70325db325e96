"""Serving throughput and latency: streaming clients against a real local `scratchlm serve`.

    python benchmarks/serve.py [--model out/model.safetensors] [--max-tokens 64] [--repeats 3]

Starts the server on the demo model (`make demo` writes it; trained here when it is missing) on a
free local port, then sends chat completions with `stream: true`:

- clients=1, 4, 16: that many clients at once, one request each;
- sequential: the same 16 requests one after another, the baseline of continuous batching.

Every request asks a different bundled question and generates exactly `--max-tokens` tokens
(`ignore_eos`, so that all runs do the same work). Prints key=value lines: total generated tokens/s
over the wall time, time to first token (TTFT) and per-token latency (the gaps between streamed
chunks, which carry the tokens of up to 10 ms: `FLUSH_INTERVAL_S`), p50 and p99, and
`batching_gain`: the tokens/s of 16 concurrent clients over sequential.
With --repeats N every mode runs N times, interleaved, and the best run of each is printed.
"""

import argparse
import json
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


def start_server(model: Path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "scratchlm", "serve", str(model), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    found = re.search(r"http://\S+/", proc.stdout.readline())
    if not found:
        proc.kill()
        sys.exit("the server did not start")
    return proc, found.group(0)


def one_request(http: httpx.Client, model_id: str, question: str, max_tokens: int) -> dict:
    """One streamed chat completion -> its start, the arrival time of each token, its token count."""
    body = {
        "model": model_id,
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
            elif chunk["choices"][0]["delta"].get("content"):
                arrivals.append(time.perf_counter())
    return {"start": start, "arrivals": arrivals, "tokens": tokens}


def run(http, model_id, questions, clients, max_tokens) -> dict:
    """The questions sent by `clients` threads at once (1: one after another) -> the figures."""
    results, lock = [], threading.Lock()
    todo = list(questions)

    def client():
        while True:
            with lock:
                if not todo:
                    return
                question = todo.pop(0)
            result = one_request(http, model_id, question, max_tokens)
            with lock:
                results.append(result)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
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
        "token_latency_p50_ms": ms(gaps, 50),
        "token_latency_p99_ms": ms(gaps, 99),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("out/model.safetensors"))
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.model.exists():
        print(f"{args.model} is missing: training the demo model first (make demo does the same)")
        train_examples(demo_options(args.model))
    proc, url = start_server(args.model)
    # One client for all threads, made before any timing: making one costs tens of milliseconds.
    http = httpx.Client(base_url=url, timeout=600, limits=httpx.Limits(max_connections=32))
    try:
        model_id = http.get("v1/models").json()["data"][0]["id"]
        questions = QUESTIONS[:16]
        one_request(http, model_id, questions[0], 8)  # warm-up
        modes = {
            "sequential": (16, 1),
            "clients=1": (1, 1),
            "clients=4": (4, 4),
            "clients=16": (16, 16),
        }
        best = {}
        for _ in range(args.repeats):
            for mode, (n, clients) in modes.items():
                figures = run(http, model_id, questions[:n], clients, args.max_tokens)
                if mode not in best or figures["tokens_per_s"] > best[mode]["tokens_per_s"]:
                    best[mode] = figures
        print(f"model={args.model} max_tokens={args.max_tokens} repeats={args.repeats}")
        for mode, figures in best.items():
            print(f"mode={mode} " + " ".join(f"{k}={v}" for k, v in figures.items()))
        gain = best["clients=16"]["tokens_per_s"] / best["sequential"]["tokens_per_s"]
        print(f"batching_gain={gain:.1f} (16 concurrent clients over the same 16 sequentially)")
    finally:
        http.close()
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
