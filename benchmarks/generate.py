"""Times greedy generation with and without the key/value cache.

    python benchmarks/generate.py [--repeats 1] [--config default|large]

For each config (random float32 weights): a 64-token prompt, 192 new tokens, batch 1. "cache=off"
runs the model's full forward pass over the whole context for every new token; "cache=on" runs each
new token alone through every recursion step against the per-step caches. Prints tokens/s (best of
the repeats), the speedup, and whether both produced the same tokens.
"""

import argparse
import time

import numpy as np

from scratchlm import Model, ModelConfig
from scratchlm.generate import generate_batch
from scratchlm.sampling import Sampling

CONFIGS = {
    "default": ModelConfig(vocab_size=2048, max_seq_len=256),
    "large": ModelConfig(
        vocab_size=4096, d_model=384, n_heads=6, d_ff=1024, depth=6, max_seq_len=256
    ),
}
PROMPT_TOKENS, NEW_TOKENS = 64, 192


def timed_generation(model, prompt, use_cache, repeats):
    """-> (best seconds, generated tokens)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = generate_batch(model, [prompt], Sampling(NEW_TOKENS), use_cache=use_cache)[0]
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--config", choices=sorted(CONFIGS), action="append")
    args = parser.parse_args()
    for name in args.config or CONFIGS:
        cfg = CONFIGS[name]
        model = Model(cfg, seed=0)
        prompt = np.random.default_rng(0).integers(3, cfg.vocab_size, PROMPT_TOKENS).tolist()
        generate_batch(model, [prompt], Sampling(8))  # warm-up
        t_off, out_off = timed_generation(model, prompt, False, args.repeats)
        t_on, out_on = timed_generation(model, prompt, True, args.repeats)
        print(f"config={name} cache=off tokens_per_s={NEW_TOKENS / t_off:.1f}")
        print(
            f"config={name} cache=on tokens_per_s={NEW_TOKENS / t_on:.1f} "
            f"speedup={t_off / t_on:.1f} same_tokens={out_on == out_off}"
        )


if __name__ == "__main__":
    main()
