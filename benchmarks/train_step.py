"""Times one training step (forward + backward) and compares it with NumPy's own matmul peak.

    python benchmarks/train_step.py [--repeats 10] [--threads N]

Prints, for (a) the default config at batch 32 x 64 and (b) a larger config at batch 8 x 256:
tokens/s, ms/step (median of repeated steps after warm-up), the achieved GFLOP/s counting the
matrix products, and that as a fraction of the float32 matmul peak measured in the same run; then
a full training update as the trainer runs it (`Trainer.update`: the shards on `--threads`
threads, default the trainer's (the cores), the weighted sum, clipping and the AdamW step), in
tokens/s and ms per update (median).
"""

import argparse
import time

import numpy as np

from scratchlm import Model, ModelConfig
from scratchlm.allocator import keep_freed_memory
from scratchlm.examples import Batch
from scratchlm.parallel import threads_per_process
from scratchlm.trainer import TrainConfig, Trainer

CASES = {
    "a-default": (ModelConfig(vocab_size=2048), 32, 64),
    "b-large": (
        ModelConfig(vocab_size=4096, d_model=384, n_heads=6, d_ff=1024, depth=6, max_seq_len=256),
        8,
        256,
    ),
}


def matmul_peak(repeats=5):
    """Best float32 GFLOP/s of square matrix products of size 1024 and 2048."""
    best = 0.0
    rng = np.random.default_rng(0)
    for n in (1024, 2048):
        a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
        a @ b  # warm-up
        t = min(_timed(lambda a=a, b=b: a @ b) for _ in range(repeats))
        best = max(best, 2 * n**3 / t / 1e9)
    return best


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def step_flops(cfg, B, T):
    """Matrix-product FLOPs of one forward + backward (backward = twice the forward)."""
    N, d, F, V, H, P = B * T, cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.n_heads, cfg.cope_max_pos
    per_step = (
        2 * N * d * 4 * d  # q, k, v, o projections
        + 2 * 2 * B * H * T * T * cfg.d_head  # scores and attention-weighted values
        + 2 * N * d * P  # CoPE: every query against every position embedding
        + 2 * N * d * 3 * F  # SwiGLU: w1, w3, w2
    )
    forward = cfg.depth * per_step + 2 * N * d * V
    return 3 * forward


def batch(cfg, B, T) -> Batch:
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (B, T + 1))
    return Batch(ids[:, :-1], ids[:, 1:], np.ones((B, T), dtype=np.float32))


def median_time(fn, repeats):
    for _ in range(2):  # warm-up
        fn()
    times = sorted(_timed(fn) for _ in range(repeats))
    return times[len(times) // 2]


def bench(cfg, B, T, repeats):
    """Model.loss_and_grads alone."""
    model, b = Model(cfg, seed=0), batch(cfg, B, T)
    return median_time(lambda: model.loss_and_grads(b.inputs, b.targets), repeats)


def bench_update(cfg, B, T, repeats, threads):
    """One update as the trainer takes it."""
    trainer, b = (
        Trainer(Model(cfg, seed=0), TrainConfig(lr=1e-4), threads=threads),
        batch(cfg, B, T),
    )
    return median_time(lambda: trainer.update([b], 1e-4), repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--threads", type=int, help="trainer threads (default: the cores)")
    args = parser.parse_args()
    threads = threads_per_process(args.threads)
    keep_freed_memory()  # as the trainer does: see allocator.py
    peak = matmul_peak()
    print(f"matmul_peak_gflops={peak:.1f} (float32, best of 1024/2048 square)")
    for name in args.case or CASES:
        cfg, B, T = CASES[name]
        t = bench(cfg, B, T, args.repeats)
        gflops = step_flops(cfg, B, T) / t / 1e9
        print(
            f"case={name} batch={B}x{T} params={Model(cfg).num_parameters} "
            f"ms_per_step={t * 1e3:.1f} tokens_per_s={B * T / t:.0f} "
            f"gflops={gflops:.1f} peak_fraction={gflops / peak:.1%}"
        )
        t = bench_update(cfg, B, T, args.repeats, threads)
        print(
            f"case={name} trainer_update threads={threads} ms_per_update={t * 1e3:.1f} "
            f"tokens_per_s={B * T / t:.0f}"
        )


if __name__ == "__main__":
    main()
