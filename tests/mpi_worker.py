"""The program that test_parallel.py starts under `mpiexec` (and imports, for the one-process runs).

python tests/mpi_worker.py runs OUT          train every case of RUNS in float64; each rank
                                             writes OUT/<case>.rank<r>.npz
python tests/mpi_worker.py cli OUT ARGS...   `scratchlm ARGS...`; each rank first writes its
                                             process id to OUT/rank<r>.pid
python tests/mpi_worker.py cli OUT --interrupt-at N ARGS...   the same, with Ctrl-C pressed
                                             on rank 0 as it is about to save at update N
"""

import os
import sys
import traceback
from pathlib import Path

import numpy as np

from scratchlm import Model, ModelConfig
from scratchlm.cli import main as cli_main
from scratchlm.examples import Batch, ExampleBatcher
from scratchlm.parallel import get_world, stop_all
from scratchlm.trainer import TrainConfig, Trainer

TINY = {"vocab_size": 13, "d_model": 16, "n_heads": 2, "d_ff": 24, "max_seq_len": 12}
FIXED = {**TINY, "depth": 2}
ADAPTIVE = {**TINY, "depth": 1, "adaptive_depth": True, "max_depth": 3}


def examples(n=21, seed=0):
    """Counting sequences of different lengths, with loss masks that start at different places:
    every shard of every batch counts a different number of targets."""
    rng = np.random.default_rng(seed)
    seqs = [
        [3 + (a + i) % 10 for i in range(k)] + [2]
        for a, k in zip(rng.integers(0, 10, n), rng.integers(3, 12, n), strict=True)
    ]
    starts = [int(rng.integers(0, len(s) - 1)) for s in seqs]
    counted = [[i > start for i in range(len(s))] for s, start in zip(seqs, starts, strict=True)]
    return ExampleBatcher(seqs, batch_size=7, max_seq_len=12, seed=seed, counted=counted)


class Windows:
    """A tiny stand-in for TokenCorpus: random windows of one fixed token stream."""

    def __init__(self, seed=0):
        self.tokens = np.random.default_rng(seed).integers(3, 13, 400)

    def sample(self, batch_size, seq_len, rng, split="train"):
        starts = rng.integers(0, len(self.tokens) - seq_len, size=batch_size)
        w = self.tokens[starts[:, None] + np.arange(seq_len + 1)]
        return Batch(w[:, :-1], w[:, 1:], np.ones((batch_size, seq_len), dtype=np.float32))


def poison_second_call(model):
    """The second loss_and_grads call on this process returns a NaN gradient."""
    real, calls = model.loss_and_grads, [0]

    def poisoned(*args, **kwargs):
        loss, grads, stats = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] == 2:
            grads["head.w"][0, 0] = np.nan
        return loss, grads, stats

    model.loss_and_grads = poisoned


def train_case(case: str, threads: int = 1, poison: bool = False) -> Trainer:
    """One float64 training run of `case` (see RUNS); k updates on the same global batches
    whatever the number of processes and threads."""
    source, config, *more = case.split("-")
    cfg = ModelConfig(**(FIXED if config == "fixed" else ADAPTIVE))
    dropout = 0.3 if more == ["dropout"] else 0.0  # masks drawn per row: the same on any shards
    model = Model(cfg, seed=1, dtype="float64")
    if poison:
        poison_second_call(model)
    if source == "examples":  # 3 batches a epoch, 2 micro-batches an update, 2 epochs
        trainer = Trainer(
            model, TrainConfig(epochs=2, accum=2, lr=1e-2, dropout=dropout), threads=threads
        )
        trainer.fit_examples("pre", examples())
    else:
        trainer = Trainer(
            model, TrainConfig(steps=4, batch_size=6, lr=1e-2, dropout=dropout), threads=threads
        )
        corpus = Windows()

        def evaluate(row):  # on rank 0 alone, while the others go on
            val = corpus.sample(6, 10, np.random.default_rng(1), "val")
            return {"val_loss": model.loss(*val)}

        trainer.fit_corpus(corpus, 10, np.random.default_rng(0), eval_every=2, evaluate=evaluate)
    return trainer


RUNS = [
    "corpus-fixed",
    "corpus-adaptive",
    "examples-fixed",
    "examples-adaptive",
    "examples-adaptive-dropout",
]


def runs(out: Path):
    rank = get_world().rank
    for case in RUNS:
        trainer = train_case(case)
        np.savez(out / f"{case}.rank{rank}.npz", **trainer.model.params)
    trainer = train_case("corpus-fixed", poison=rank == 1)  # rank 1's shard of update 2 is NaN
    np.savez(out / f"skip.rank{rank}.npz", step=trainer.step, **trainer.model.params)


def save_interrupted_at(step: int):
    """A `Trainer.save` on which Ctrl-C is pressed as it is about to save at update `step`."""
    real_save = Trainer.save

    def interrupted(self, path, state):
        if self.step == step:
            raise KeyboardInterrupt
        real_save(self, path, state)

    return interrupted


def cli(out: Path, argv: list[str]) -> int:
    rank = get_world().rank
    (out / f"rank{rank}.pid").write_text(str(os.getpid()))
    if argv[0] == "--interrupt-at":
        Trainer.save, argv = save_interrupted_at(int(argv[1])), argv[2:]
    return cli_main(argv)


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "cli":
        sys.exit(cli(out, sys.argv[3:]))
    try:
        runs(out)
    except Exception:  # a bug here must not leave the other rank waiting forever
        traceback.print_exc()
        sys.exit(stop_all(1))
