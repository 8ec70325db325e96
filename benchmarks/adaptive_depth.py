"""Adaptive depth (ACT) against fixed depth on the bundled corpus, after the same training.

    python benchmarks/adaptive_depth.py [--epochs 10] [--halt-bias 1.0] [--ponder-weight 0.03]

Word tokenizer over data/pretrain.json, 90% of the facts for training and 10% held out. Three small
models (d_model 64, 4 heads, d_ff 128) train with the same seed, batches and Adam updates:
fixed depth `max_depth`, adaptive depth with at most `max_depth` steps, and fixed depth at the
adaptive model's rounded-up mean depth (does ACT beat simply running fewer steps?). For each it
prints one line: validation cross-entropy after the last epoch and at the best epoch, training
cross-entropy (the ponder term is excluded everywhere, so the numbers compare), depth used on validation tokens (mean/min/max), block steps actually run per batch (the
loop stops only when every token of the batch, padding included, has halted) and the forward time
over the validation set (best of 7, as other work on the machine only ever adds time).

The defaults come from a sweep (3 seeds, 10 epochs): ponder weight 0.01 or less leaves a few tokens
(often padding) at max_depth, so the batch runs every step and nothing is saved; 0.03 keeps every
token within 2-4 steps at a validation loss 2-3% above fixed depth; 0.05 and more cost more loss.
The initial halting bias (0, 1 or 2) mattered less than the seed. 10 epochs is about where the
held-out loss is lowest: these facts are mostly new sentences, so longer training overfits.

Not a benchmark of the trainer: a minimal loop (Adam at a constant learning rate, gradients clipped
to norm 1) keeps the comparison about the model alone.
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np

from scratchlm import Model, ModelConfig
from scratchlm.examples import ExampleBatcher, load_examples
from scratchlm.layers.cross_entropy import cross_entropy_forward
from scratchlm.optim import AdamW, clip_grad_norm
from scratchlm.tokenizers import build_tokenizer

CORPUS = Path(__file__).resolve().parent.parent / "data" / "pretrain.json"
SMALL = {"d_model": 64, "n_heads": 4, "d_ff": 128, "max_seq_len": 32, "cope_max_pos": 16}


def split_corpus(seed=0, val_fraction=0.1):
    """-> tokenizer, train examples, validation examples (token-id lists)."""
    texts = load_examples(CORPUS)
    order = np.random.default_rng(seed).permutation(len(texts))
    n_val = int(len(texts) * val_fraction)
    tok = build_tokenizer("word", [texts[i] for i in order[n_val:]])
    encoded = [tok.encode(texts[i]) for i in order]
    return tok, encoded[n_val:], encoded[:n_val]


def train(model, batcher, epochs, lr, val_batches):
    """-> training seconds, (best validation cross-entropy, its epoch) over the epochs."""
    opt = AdamW(model.params, lr=lr)  # weight decay 0: plain Adam
    seconds, best = 0.0, (math.inf, 0)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        for b in batcher.batches(epoch):
            _, grads = model.loss_and_grads(b.inputs, b.targets, b.mask)
            clip_grad_norm(grads, 1.0)
            opt.step(grads)
        seconds += time.perf_counter() - t0
        best = min(best, (evaluate(model, val_batches)[0], epoch + 1))
    return seconds, best


def evaluate(model, batches):
    """-> cross-entropy, the depths of the counted tokens, block steps run per batch."""
    ce = count = 0.0
    depths, steps = [], []
    for b in batches:
        logits, cache = model.forward(b.inputs)
        n = float(b.mask.sum())
        ce += cross_entropy_forward(logits, b.targets, b.mask)[0] * n
        count += n
        if model.config.adaptive_depth:
            depths.append(cache[1].N[b.mask > 0])
            steps.append(len(cache[1].steps))
        else:
            depths.append(np.full(int(n), model.config.depth))
            steps.append(model.config.depth)
    depths = np.concatenate(depths)
    return ce / count, depths, float(np.mean(steps))


def forward_ms(model, batches, repeats=7):
    """Best time of one forward pass over every validation batch, in milliseconds."""
    times = []
    for _ in range(repeats + 1):  # the first pass warms caches and the allocator up
        t0 = time.perf_counter()
        for b in batches:
            model.logits(b.inputs)
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times[1:])


def run(name, cfg, seed, train_ex, val_batches, args, halt_bias=None) -> dict:
    """Train one model (seed: initialisation and batch order) and print its line."""
    model = Model(cfg, seed=seed)
    if halt_bias is not None:
        model.params["block.halt.b"][...] = halt_bias
    batcher = ExampleBatcher(train_ex, args.batch_size, SMALL["max_seq_len"], seed=seed)
    seconds, (best_ce, best_epoch) = train(model, batcher, args.epochs, args.lr, val_batches)
    ce, depths, steps = evaluate(model, val_batches)
    train_ce, _, _ = evaluate(model, batcher.batches(0))
    ms = forward_ms(model, val_batches)
    print(
        f"seed={seed} mode={name} val_ce={ce:.4f} best_val_ce={best_ce:.4f}@{best_epoch} "
        f"train_ce={train_ce:.4f} depth_mean={depths.mean():.2f} "
        f"depth_min={depths.min()} depth_max={depths.max()} steps_run={steps:.2f} "
        f"forward_ms={ms:.1f} train_s={seconds:.1f}",
        flush=True,
    )
    return {"val_ce": ce, "best_val_ce": best_ce, "depth": depths.mean(), "forward_ms": ms}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-depth", type=int, default=6)
    parser.add_argument("--halt-bias", type=float, default=1.0, help="initial halting bias")
    parser.add_argument("--ponder-weight", type=float, default=0.03)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3, help="repeat with seeds 0 .. seeds-1")
    args = parser.parse_args()

    tok, train_ex, val_ex = split_corpus()
    val_batches = list(ExampleBatcher(val_ex, 32, SMALL["max_seq_len"]).batches(0))
    base = {"vocab_size": tok.vocab_size, **SMALL}
    print(
        f"corpus={CORPUS.name} train_examples={len(train_ex)} val_examples={len(val_ex)} "
        f"vocab={tok.vocab_size} epochs={args.epochs} max_depth={args.max_depth} "
        f"halt_bias_init={args.halt_bias} ponder_weight={args.ponder_weight}",
        flush=True,
    )
    fixed = ModelConfig(**base, depth=args.max_depth)
    adaptive = ModelConfig(
        **base, adaptive_depth=True, max_depth=args.max_depth, ponder_weight=args.ponder_weight
    )
    results = {"fixed": [], "adaptive": []}
    for seed in range(args.seeds):
        results["fixed"].append(
            run(f"fixed-{args.max_depth}", fixed, seed, train_ex, val_batches, args)
        )
        act = run("adaptive", adaptive, seed, train_ex, val_batches, args, args.halt_bias)
        results["adaptive"].append(act)
        short = math.ceil(act["depth"])
        run(f"fixed-{short}", ModelConfig(**base, depth=short), seed, train_ex, val_batches, args)
    mean = {m: {k: np.mean([r[k] for r in rs]) for k in rs[0]} for m, rs in results.items()}
    f, a = mean["fixed"], mean["adaptive"]
    print(
        f"summary (mean of {args.seeds} seeds) adaptive vs fixed-{args.max_depth}: "
        f"val_ce {a['val_ce']:.4f} vs {f['val_ce']:.4f} ({a['val_ce'] / f['val_ce'] - 1:+.1%}), "
        f"best_val_ce {a['best_val_ce']:.4f} vs {f['best_val_ce']:.4f} "
        f"({a['best_val_ce'] / f['best_val_ce'] - 1:+.1%}), "
        f"forward_ms {a['forward_ms']:.1f} vs {f['forward_ms']:.1f} "
        f"({a['forward_ms'] / f['forward_ms'] - 1:+.1%}), mean depth {a['depth']:.2f} of {args.max_depth}"
    )


if __name__ == "__main__":
    main()
