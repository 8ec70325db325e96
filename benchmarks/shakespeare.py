"""Trains the Tiny Shakespeare preset for a fixed budget of training time and prints the validation
loss over the training time (and a PNG of it when matplotlib is installed).

    python benchmarks/shakespeare.py [--minutes 2] [--eval-every 50] [--seeds 0 1 2] [--corpus PATH]

The corpus defaults to ../shared/data/tinyshakespeare.txt beside the repository (or the
SCRATCHLM_SHAKESPEARE variable). The number of updates is set so that the learning-rate schedule
ends with the budget (the preset's `steps` per 2 minutes, sized on this project's machine), so
longer budgets train a little better at every point of time, not only at the end.

Training time excludes the evaluations: it is the trainer's own clock, which runs from the end of
one evaluation to the start of the next (`tokens_per_s` in each row), as `scratchlm compare
--minutes` counts it (`scratchlm train --max-minutes` counts wall time); the budget stops a slower
run before its schedule ends. Printed at the end: the training seconds until the validation loss
first reached TARGET_LOSS, the validation loss at the last evaluation within 60 s and 120 s of
training, and the final one, also over the whole validation split; with several seeds, each run's
lines and then each figure's mean and standard deviation over the seeds.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

from scratchlm import Model, ModelConfig
from scratchlm.corpus import TokenCorpus, read_corpus
from scratchlm.evaluate import mean_loss
from scratchlm.examples import Batch
from scratchlm.parallel import threads_per_process
from scratchlm.plot import plot_metrics
from scratchlm.tokenizers import build_tokenizer
from scratchlm.train import CORPUS_MODEL, CORPUS_TRAIN, RunOptions, corpus_evaluation
from scratchlm.trainer import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]
DEFAULT = os.environ.get("SCRATCHLM_SHAKESPEARE", REPO.parent / "shared/data/tinyshakespeare.txt")
TARGET_LOSS = 1.88  # nanoGPT's CPU preset never gets below it (issue 15)
CHECKPOINTS_S = (60, 120)  # training seconds at which the validation loss is reported


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--eval-every", type=int, default=50, help="updates between evaluations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--corpus", type=Path, default=Path(DEFAULT))
    parser.add_argument("--png", type=Path, default=Path("shakespeare_loss.png"))
    parser.add_argument("--threads", type=int, help="as `scratchlm train` (default: the cores)")
    args = parser.parse_args()
    tokenizer = build_tokenizer("char", read_corpus(args.corpus))
    corpus = TokenCorpus.build(args.corpus, tokenizer)
    runs = [run(args, tokenizer, corpus, seed) for seed in args.seeds]
    if len(runs) > 1:
        for key in runs[0]:
            values = [r.get(key, np.nan) for r in runs]  # nan: a seed never reached it
            print(
                f"mean {key}={np.mean(values):.4f} std={np.std(values):.4f} of {len(values)} seeds"
            )


def run(args, tokenizer, corpus, seed: int) -> dict:
    """One training of the preset from `seed` (its weights, batches and dropout masks); prints
    each evaluation and the figures, and returns them."""
    model = Model(ModelConfig(vocab_size=tokenizer.vocab_size, **CORPUS_MODEL), tokenizer, seed)
    steps = int(CORPUS_TRAIN["steps"] * args.minutes / 2)
    tc = TrainConfig(**{**CORPUS_TRAIN, "steps": steps, "seed": seed})
    window = tc.batch_size * CORPUS_MODEL["max_seq_len"]  # tokens per update
    threads = threads_per_process(args.threads)
    print(f"seed={seed} params={model.num_parameters} budget_min={args.minutes}", end=" ")
    print(f"steps_planned={steps} threads={threads}")
    trainer, t0 = Trainer(model, tc, threads=threads), time.perf_counter()
    curve = []  # (training seconds, step, validation loss) at each evaluation

    validation = corpus_evaluation(model, corpus, RunOptions(train=tc))

    def record(row):
        figures = validation(row)
        train_s = row["train_s"]  # the trainer's clock: evaluations excluded
        curve.append((train_s, row["step"], figures["val_loss"]))
        print(
            f"train_s={train_s:6.1f} wall_s={time.perf_counter() - t0:6.1f} step={row['step']} "
            f"train_loss={row['loss']:.4f} val_loss={figures['val_loss']:.4f} "
            f"tokens_per_s={row['tokens_per_s']:.0f}",
            flush=True,
        )
        return figures

    rows = trainer.fit_corpus(
        corpus,
        CORPUS_MODEL["max_seq_len"],
        np.random.default_rng(seed),
        args.eval_every,
        evaluate=record,
        max_train_s=60 * args.minutes,
    )
    train_s, step, val = curve[-1]
    full = whole_split_loss(model, corpus.val, CORPUS_MODEL["max_seq_len"])
    figures = {"final_val_loss": val, "whole_split_val_loss": full}
    figures["train_tokens_per_s"] = step * window / train_s
    print(
        f"seed={seed} steps={step} train_s={train_s:.1f} wall_s={time.perf_counter() - t0:.1f} "
        f"train_tokens_per_s={figures['train_tokens_per_s']:.0f} final_val_loss={val:.4f} "
        f"whole_split_val_loss={full:.4f}"
    )
    reached = [t for t, _, v in curve if v <= TARGET_LOSS]
    print(f"train_s_to_{TARGET_LOSS}=" + (f"{reached[0]:.1f}" if reached else "not_reached"))
    if reached:
        figures[f"train_s_to_{TARGET_LOSS}"] = reached[0]
    for limit in CHECKPOINTS_S:
        seen = [(t, v) for t, _, v in curve if t <= limit]
        if seen:
            figures[f"val_loss_at_{limit}s"] = seen[-1][1]
            print(
                f"val_loss_at_{limit}s={seen[-1][1]:.4f} (evaluated at train_s={seen[-1][0]:.1f})"
            )
    if plot_metrics(rows, args.png.with_stem(f"{args.png.stem}_seed{seed}")):
        print(f"plot={args.png.with_stem(f'{args.png.stem}_seed{seed}')}")
    return figures


def whole_split_loss(model, tokens: np.ndarray, seq_len: int, rows: int = 64) -> float:
    """The mean loss over every window of `seq_len` targets of the validation split, side by side:
    the evaluations during training read a fixed sample of it (EVAL_BATCHES windows, drawn from
    the run's seed), which differs from seed to seed by about as much as the seeds' models do."""
    n = (len(tokens) - 1) // seq_len
    inputs = tokens[: n * seq_len].reshape(n, seq_len).astype(np.int64)  # (n, T)
    targets = tokens[1 : n * seq_len + 1].reshape(n, seq_len).astype(np.int64)  # (n, T)
    pieces = ((inputs[i : i + rows], targets[i : i + rows]) for i in range(0, n, rows))
    return mean_loss(model, (Batch(x, y, np.ones(x.shape, np.float32)) for x, y in pieces))


if __name__ == "__main__":
    main()
