"""Trains the Tiny Shakespeare preset for a fixed wall-clock budget and prints the validation loss
over time (and a PNG of it when matplotlib is installed).

    python benchmarks/shakespeare.py [--minutes 5] [--corpus PATH]

The corpus defaults to ../shared/data/tinyshakespeare.txt beside the repository (or the
SCRATCHLM_SHAKESPEARE variable). The number of updates is set so that the learning-rate schedule
ends with the budget (the preset's 1400 updates per 2 minutes on the reference machine), so
longer budgets train a little better at every point of time, not only at the end.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

from scratchlm import Model, ModelConfig
from scratchlm.corpus import TokenCorpus, read_corpus
from scratchlm.plot import plot_metrics
from scratchlm.tokenizers import build_tokenizer
from scratchlm.train import CORPUS_MODEL, CORPUS_TRAIN, TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]
DEFAULT = os.environ.get("SCRATCHLM_SHAKESPEARE", REPO.parent / "shared/data/tinyshakespeare.txt")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--corpus", type=Path, default=Path(DEFAULT))
    parser.add_argument("--png", type=Path, default=Path("shakespeare_loss.png"))
    args = parser.parse_args()
    tokenizer = build_tokenizer("char", read_corpus(args.corpus))
    corpus = TokenCorpus.build(args.corpus, tokenizer)
    model = Model(ModelConfig(vocab_size=tokenizer.vocab_size, **CORPUS_MODEL), tokenizer)
    steps = int(CORPUS_TRAIN["steps"] * args.minutes / 2)
    tc = TrainConfig(**{**CORPUS_TRAIN, "steps": steps})
    print(f"params={model.num_parameters} budget_min={args.minutes} steps_planned={steps}")
    trainer, t0, curve = Trainer(model, tc), time.perf_counter(), []

    def record(row):
        curve.append((time.perf_counter() - t0, row["step"], row["val_loss"]))
        print(
            f"t={curve[-1][0]:6.1f}s step={row['step']} train_loss={row['loss']:.4f} "
            f"val_loss={row['val_loss']:.4f} tokens_per_s={row['tokens_per_s']:.0f}",
            flush=True,
        )

    rng = np.random.default_rng(0)
    rows = trainer.fit_corpus(
        corpus, CORPUS_MODEL["max_seq_len"], rng, 100, max_minutes=args.minutes, on_eval=record
    )
    seconds = time.perf_counter() - t0
    tokens = trainer.step * tc.batch_size * CORPUS_MODEL["max_seq_len"]
    print(f"steps={trainer.step} wall_s={seconds:.1f} tokens_per_s={tokens / seconds:.0f}")
    for minute in (1, 2, 3, 5):
        seen = [v for t, _, v in curve if t <= 60 * minute + 1]
        if seen and minute <= args.minutes:
            print(f"val_loss_at_{minute}min={seen[-1]:.4f}")
    if plot_metrics(rows, args.png):
        print(f"plot={args.png}")


if __name__ == "__main__":
    main()
