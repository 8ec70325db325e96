"""The update rule and the two training loops: `TrainConfig` and `Trainer`.

Every update: accumulate gradients over `accum` micro-batches (weighted by their counted tokens, so
the result equals one big batch; parallel.py cuts them into shards for threads and, under mpiexec,
processes; with `dropout` > 0 every row of a micro-batch draws its masks from a generator seeded by
(seed, update, micro-batch, row), so a resumed run, and a run on any number of shards, draws the
same ones), refuse non-finite or anomalous gradients (skip the update with a warning;
`max_bad_steps` in a row raise `TrainingDivergedError`), clip the global gradient norm, take a step
of the optimizer `TrainConfig.optimizer` names (optim/) at the scheduled learning rate. A
non-finite or exploding loss stops training at once.

Two loops feed it: `fit_examples` (epochs of shuffled, padded whole examples from an
`ExampleBatcher`) and `fit_corpus` (steps of random fixed-length windows from a `TokenCorpus`).
Both end every interval (an epoch; `eval_every` updates) the same way, on rank 0 alone: the run's
`evaluate(row)` adds its held-out figures to the interval's row, the row gets the gradient
analysis (gradients.py), goes to the metrics file and the log, and a checkpoint is written. Every
row also carries the training clock: `train_s` (seconds spent in updates, evaluations excluded)
and `tokens` (targets trained on), counted from the start of the run, resumes included.
"""

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .act import Depth
from .checkpoint import save_checkpoint
from .checks import check_fields, checked
from .corpus import TokenCorpus
from .errors import ConfigError, TrainingDivergedError, WriteError
from .examples import Batch, ExampleBatcher
from .fileio import append_text
from .gradients import GradientMeter
from .layers.dropout import Dropout
from .log import log_metrics
from .optim import OPTIMIZERS, clip_grad_norm, lr_at
from .parallel import DataParallel

logger = logging.getLogger("scratchlm")


@dataclass
class TrainConfig:
    epochs: int = checked(10, low=1)  # example sets: passes over the data
    steps: int = checked(1000, low=1)  # corpora: optimizer updates
    batch_size: int = checked(32, low=1)
    lr: float = checked(2e-3, low=0, low_open=True)  # peak learning rate
    min_lr_ratio: float = checked(0.1, low=0, high=1)  # the cosine ends at lr * min_lr_ratio
    warmup: float = checked(0.05, low=0, high=1, high_open=True)  # fraction spent warming up
    optimizer: str = checked("adamw", choices=tuple(OPTIMIZERS))
    weight_decay: float = checked(0.0, low=0)  # decoupled, on the matrices (params.decays)
    beta1: float = checked(0.9, low=0, high=1, high_open=True)  # the momentum of every optimizer
    beta2: float = checked(
        0.999, low=0, high=1, low_open=True, high_open=True
    )  # Adam's v, Lion's m
    dropout: float = checked(0.0, low=0, high=1, high_open=True)  # training only; 0: none
    grad_clip: float = checked(1.0, low=0)  # global gradient-norm limit (0: no clipping)
    accum: int = checked(1, low=1)  # micro-batches per update
    max_grad: float = checked(1000.0, low=0, low_open=True)  # max |g| above this: skipped update
    max_bad_steps: int = checked(3, low=1)  # that many skipped updates in a row stop training
    explode_factor: float = checked(4.0, low=0, low_open=True)  # loss x this: training stops
    seed: int = checked(0, low=0)

    def __post_init__(self):
        check_fields(self, "training option {}", ConfigError)


class MetricsLog:
    """Appends one JSON object per line to a metrics file (and keeps them for the loss plot).
    A failed write is a warning and stops the file there: training goes on (train.py)."""

    def __init__(self, path: Path | None):
        self.path, self.rows = path, []

    def write(self, row: dict):
        self.rows.append(row)
        if self.path is not None:
            try:
                append_text(self.path, json.dumps(row) + "\n", WriteError)
            except WriteError as e:
                logger.warning("%s; training goes on without writing more metrics there", e)
                self.path = None


Evaluate = Callable[[dict], dict]  # the interval's row -> held-out figures to add to it


class Trainer:
    """Owns the optimizer and the update rule; `fit_examples` and `fit_corpus` drive it.

    `threads` > 1 computes the shards of each update on that many threads (parallel.py); 1 runs
    them one after another, as a plain loop. `label` names the run in its progress bars."""

    def __init__(
        self, model, tc: TrainConfig, metrics: MetricsLog | None = None, threads=1, label=""
    ):
        self.model, self.tc, self.label = model, tc, label
        self.metrics = metrics or MetricsLog(None)
        self.parallel = DataParallel(model, threads)
        self.world = self.parallel.world
        betas = (tc.beta1, tc.beta2)
        self.opt = OPTIMIZERS[tc.optimizer](
            model.params, lr=tc.lr, betas=betas, weight_decay=tc.weight_decay
        )
        self.gradients = GradientMeter(model)
        self.step = 0  # updates taken in the current phase
        self.bad_in_row = 0
        self.first_loss = None
        self.last_lr = 0.0
        self.train_s = 0.0  # the training clock (module docstring)
        self.tokens = 0.0

    # ------------------------------------------------------------------------------ one update

    def update(self, micro_batches: list[Batch], lr: float) -> dict | None:
        """One optimizer update from `micro_batches` (under mpiexec every rank passes the same
        global ones); None if it was skipped as anomalous. Every rank takes the same decisions
        from the same summed gradient."""
        dropouts = [self._dropout(i) for i in range(len(micro_batches))]
        loss, total, tokens, depth = self.parallel.gradients(micro_batches, dropouts)
        self._check_loss(loss)
        # np.max, not max(): Python's max() drops a NaN or keeps it depending on the order
        worst = float(np.max([np.max(np.abs(g)) for g in total.values()]))
        if not math.isfinite(worst) or worst > self.tc.max_grad:
            self._skip(f"max |grad| = {worst:.3g}")
            return None
        self.bad_in_row = 0
        norm = self.gradients.add(total, micro_batches[0])
        clip_grad_norm(total, self.tc.grad_clip or None, norm)
        with self.parallel.blas_limit():  # measured: Muon's step otherwise slows the next update
            self.opt.step(total, lr=lr)
        self.step += 1
        self.last_lr = lr
        return {"loss": loss, "grad_norm": norm, "tokens": tokens, "depth": depth}

    def _dropout(self, micro_batch: int) -> Dropout | None:
        """The dropout of one micro-batch of the coming update; None when the rate is 0."""
        if not self.tc.dropout:
            return None
        return Dropout(self.tc.dropout, seed=(self.tc.seed, self.step, micro_batch))

    def _check_loss(self, loss: float):
        if not math.isfinite(loss):
            raise TrainingDivergedError(f"the loss became {loss} at update {self.step + 1}")
        if self.first_loss is None:
            self.first_loss = loss
        elif loss > self.tc.explode_factor * self.first_loss:
            raise TrainingDivergedError(
                f"the loss exploded from {self.first_loss:.4g} to {loss:.4g} at update "
                f"{self.step + 1}; try a lower learning rate"
            )

    def _skip(self, why: str):
        self.bad_in_row += 1
        logger.warning("skipped update %d: anomalous gradient (%s)", self.step + 1, why)
        if self.bad_in_row >= self.tc.max_bad_steps:
            raise TrainingDivergedError(
                f"{self.bad_in_row} anomalous gradients in a row ({why}); training stopped, "
                "the last checkpoint is intact"
            )

    def resume(self, opt_state: dict, state: dict) -> None:
        """Continue from a checkpoint's optimizer state and trainer state (`load_checkpoint`)."""
        self.opt.load_state_dict(opt_state)
        self.step = state["step"]
        self.train_s, self.tokens = state.get("train_s", 0.0), state.get("tokens", 0.0)

    def lr(self, total_updates: int) -> float:
        tc = self.tc
        return lr_at(  # the update about to be taken is number step + 1
            self.step + 1,
            max_lr=tc.lr,
            min_lr=tc.lr * tc.min_lr_ratio,
            warmup_steps=int(tc.warmup * total_updates),
            total_steps=total_updates,
        )

    # ------------------------------------------------------------------------------ the loops

    def fit_examples(
        self,
        phase: str,
        batcher: ExampleBatcher,
        evaluate: Evaluate | None = None,
        checkpoint: Path | None = None,
        start_epoch: int = 0,
    ) -> list[dict]:
        """Train `tc.epochs` epochs (from `start_epoch` when resuming); one row per epoch."""
        tc = self.tc
        updates_per_epoch = -(-len(batcher) // tc.accum)
        total = tc.epochs * updates_per_epoch
        rows = []
        bar = self._progress(total, phase)
        for epoch in range(start_epoch, tc.epochs):
            t0, results = time.perf_counter(), []
            for group in _groups(batcher.batches(epoch), tc.accum):
                results.append(self.update(group, self.lr(total)))
                bar.update(1)
            row = self._summary(phase, [r for r in results if r], time.perf_counter() - t0)
            row = _with_epoch(row, epoch + 1)
            rows.append(row)
            self._end_interval(row, evaluate, checkpoint, {"phase": phase, "epoch": epoch + 1})
        bar.close()
        return rows

    def fit_corpus(
        self,
        corpus: TokenCorpus,
        seq_len: int,
        rng: np.random.Generator,
        eval_every: int = 100,
        evaluate: Evaluate | None = None,
        max_minutes: float | None = None,
        max_train_s: float | None = None,
        checkpoint: Path | None = None,
    ) -> list[dict]:
        """Train until `tc.steps` updates (counting those already taken when resuming), the
        wall-clock budget `max_minutes` or the training-clock budget `max_train_s` (rank 0's
        clocks); an interval ends every `eval_every` updates and at the end."""
        tc = self.tc
        deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
        rows, pending, t0 = [], [], time.perf_counter()
        bar = self._progress(tc.steps, "corpus")
        while self.step < tc.steps:
            group = [corpus.sample(tc.batch_size, seq_len, rng) for _ in range(tc.accum)]
            result = self.update(group, self.lr(tc.steps))
            bar.update(1)
            if result:
                pending.append(result)
            out_of_time = self.world.root_decides(
                self._out_of_time(deadline, max_minutes, max_train_s, t0)
            )
            if self.step % eval_every == 0 or self.step == tc.steps or out_of_time:
                row = self._summary("corpus", pending, time.perf_counter() - t0)
                rows.append(row)
                state = {"phase": "corpus", "rng": rng.bit_generator.state}
                self._end_interval(row, evaluate, checkpoint, state)
                pending, t0 = [], time.perf_counter()
            if out_of_time:
                logger.info("stopping at the time budget of %s", out_of_time)
                break
        bar.close()
        return rows

    def _out_of_time(self, deadline, max_minutes, max_train_s, t0) -> str:
        """Which budget is spent ("" if none): the wall clock's or the training clock's."""
        if deadline is not None and time.monotonic() >= deadline:
            return f"{max_minutes} minutes"
        if max_train_s is not None and self.train_s + time.perf_counter() - t0 >= max_train_s:
            return f"{max_train_s:g} training seconds"
        return ""

    def _end_interval(self, row: dict, evaluate, checkpoint, state: dict) -> None:
        """The one end of every interval of both loops (module docstring). The other ranks go on
        at once, and wait for rank 0 at the next update."""
        if not self.world.is_root:
            return
        if evaluate is not None:
            row.update(evaluate(row))
        row["grads"] = self.gradients.report()
        self.metrics.write(row)
        log_metrics("train", **{k: v for k, v in row.items() if k != "grads"})
        if checkpoint is not None:
            self.save(checkpoint, state)

    # ------------------------------------------------------------------------------ bookkeeping

    def _summary(self, phase, results, seconds) -> dict:
        tokens = sum(r["tokens"] for r in results)
        self.train_s += seconds
        self.tokens += tokens
        row = {"phase": phase, "step": self.step}
        row["loss"] = sum(r["loss"] * r["tokens"] for r in results) / max(tokens, 1)
        row["grad_norm"] = float(np.mean([r["grad_norm"] for r in results])) if results else 0.0
        row["lr"] = self.last_lr
        row["tokens_per_s"] = tokens / max(seconds, 1e-9)
        row["train_s"], row["tokens"] = self.train_s, self.tokens
        if self.model.config.adaptive_depth and results:  # recursion steps each token used
            row.update(Depth.merged([d for r in results for d in r["depth"]]).row())
        return row

    def _progress(self, total: int, what: str):
        """A progress bar on a terminal (stderr, rank 0); nothing when stderr is a file or pipe."""
        return tqdm(
            total=total,
            initial=self.step,
            desc=f"{self.label}: {what}" if self.label else what,
            unit="update",
            leave=False,
            disable=None if self.world.is_root else True,
        )

    def save(self, path: Path, state: dict):
        trainer_state = {
            "step": self.step,
            "seed": self.tc.seed,
            "train_config": asdict(self.tc),
            "train_s": self.train_s,
            "tokens": self.tokens,
        }
        save_checkpoint(path, self.model, self.opt.state_dict(), {**trainer_state, **state})


def _with_epoch(row: dict, epoch: int) -> dict:
    """The row with `epoch` after `step`, where example-set rows have always had it."""
    items = list(row.items())
    return dict(items[:2] + [("epoch", epoch)] + items[2:])


def _groups(batches: Iterable[Batch], size: int) -> Iterator[list[Batch]]:
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group
