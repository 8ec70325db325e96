"""Training: the loop that turns batches into parameter updates.

Two ways to feed it, one update rule:
- example sets (the seed's pre-training and instruction tuning): epochs of shuffled, padded whole
  examples from an `ExampleBatcher`;
- corpora (your own text): steps of random fixed-length windows from a `TokenCorpus`.

Every update: accumulate gradients over `accum` micro-batches (weighted by their counted tokens, so
the result equals one big batch), refuse non-finite or anomalous gradients (skip the update with a
warning; `max_bad_steps` in a row raise `TrainingDivergedError`), clip the global gradient norm, take
an AdamW step at the scheduled learning rate. A non-finite or exploding loss stops training at once.
Checkpoints are written atomically, so the last good one survives any of this.
"""

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import Batch, ExampleBatcher, TokenCorpus
from .errors import ConfigError, TrainingDivergedError
from .log import log_metrics
from .modelfile import save_checkpoint
from .optim import AdamW, accumulate, clip_grad_norm, lr_at

logger = logging.getLogger("scratchlm")


@dataclass
class TrainConfig:
    epochs: int = 10  # example sets: passes over the data
    steps: int = 1000  # corpora: optimizer updates
    batch_size: int = 32
    lr: float = 2e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup: float = 0.05  # fraction of all updates spent warming up linearly
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # global gradient-norm limit (0: no clipping)
    accum: int = 1  # micro-batches per update
    max_grad: float = 1000.0  # an update with max |g| above this is skipped as anomalous
    max_bad_steps: int = 3  # that many skipped updates in a row stop training
    explode_factor: float = 4.0  # a loss this many times the first one stops training
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "steps", "batch_size", "accum", "max_bad_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"training option {name} must be a positive integer, got {value!r}"
                )
        for name in ("lr", "max_grad", "explode_factor"):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"training option {name} must be positive, got {getattr(self, name)}"
                )
        if not 0 <= self.warmup < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("warmup must be in [0, 1) and min_lr_ratio in [0, 1]")


class MetricsLog:
    """Appends one JSON object per line to a metrics file (and keeps them for the loss plot)."""

    def __init__(self, path: Path | None):
        self.path, self.rows = path, []

    def write(self, row: dict):
        import json

        self.rows.append(row)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")


class Trainer:
    """Owns the optimizer and the update rule; `fit_examples` and `fit_corpus` drive it."""

    def __init__(self, model, tc: TrainConfig, metrics: MetricsLog | None = None):
        self.model, self.tc = model, tc
        self.metrics = metrics or MetricsLog(None)
        self.opt = AdamW(model.params, lr=tc.lr, weight_decay=tc.weight_decay)
        self.step = 0  # updates taken in the current phase
        self.bad_in_row = 0
        self.first_loss = None
        self.last_lr = 0.0

    # ------------------------------------------------------------------------------ one update

    def update(self, micro_batches: list[Batch], lr: float) -> dict | None:
        """One optimizer update from `micro_batches`; None if it was skipped as anomalous."""
        counts = [float(b.mask.sum()) for b in micro_batches]
        total, loss, depth = None, 0.0, []
        for batch, count in zip(micro_batches, counts, strict=True):
            part, grads, stats = self.model.loss_and_grads(
                batch.inputs, batch.targets, batch.mask, return_stats=True
            )
            weight = count / sum(counts)
            total = accumulate(total, grads, weight)
            loss += weight * part
            depth.append((count, stats["depth_mean"], stats["depth_min"], stats["depth_max"]))
        self._check_loss(loss)
        # np.max, not max(): Python's max() drops a NaN or keeps it depending on the order
        worst = float(np.max([np.max(np.abs(g)) for g in total.values()]))
        if not math.isfinite(worst) or worst > self.tc.max_grad:
            self._skip(f"max |grad| = {worst:.3g}")
            return None
        self.bad_in_row = 0
        norm = clip_grad_norm(total, self.tc.grad_clip or None)
        self.opt.step(total, lr=lr)
        self.step += 1
        self.last_lr = lr
        return {"loss": loss, "grad_norm": norm, "tokens": sum(counts), "depth": depth}

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

    def lr(self, total_updates: int) -> float:
        tc = self.tc
        return lr_at(  # the update about to be taken is number step + 1
            self.step + 1,
            max_lr=tc.lr,
            min_lr=tc.lr * tc.min_lr_ratio,
            warmup_steps=int(tc.warmup * total_updates),
            total_steps=total_updates,
        )

    # ------------------------------------------------------------------------------ example sets

    def fit_examples(
        self,
        phase: str,
        batcher: ExampleBatcher,
        val: ExampleBatcher | None = None,
        checkpoint: Path | None = None,
        start_epoch: int = 0,
        on_epoch: Callable[[int, dict], None] | None = None,
    ) -> list[dict]:
        """Train `tc.epochs` epochs (from `start_epoch` when resuming); one log line per epoch."""
        tc = self.tc
        updates_per_epoch = -(-len(batcher) // tc.accum)
        total = tc.epochs * updates_per_epoch
        rows = []
        bar = _progress(total, self.step, phase)
        for epoch in range(start_epoch, tc.epochs):
            t0 = time.perf_counter()
            results = []
            for group in _groups(batcher.batches(epoch), tc.accum):
                results.append(self.update(group, self.lr(total)))
                bar.update(1)
            row = self._summary(
                phase, epoch + 1, [r for r in results if r], time.perf_counter() - t0
            )
            if val is not None:
                row["val_loss"] = mean_loss(self.model, val.batches(0))
                row["val_ppl"] = math.exp(min(row["val_loss"], 50.0))
            self._report(row)
            rows.append(row)
            if checkpoint is not None:
                self.save(checkpoint, {"phase": phase, "epoch": epoch + 1})
            if on_epoch is not None:
                on_epoch(epoch + 1, row)
        bar.close()
        return rows

    # ------------------------------------------------------------------------------ corpora

    def fit_corpus(
        self,
        corpus: TokenCorpus,
        seq_len: int,
        rng: np.random.Generator,
        eval_every: int = 100,
        eval_batches: int = 10,
        max_minutes: float | None = None,
        checkpoint: Path | None = None,
        on_eval: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Train until `tc.steps` updates (counting those already taken when resuming) or the
        wall-clock budget; evaluate every `eval_every` updates and at the end."""
        tc = self.tc
        deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
        rows, pending, t0 = [], [], time.perf_counter()
        bar = _progress(tc.steps, self.step, "corpus")
        while self.step < tc.steps:
            group = [corpus.sample(tc.batch_size, seq_len, rng) for _ in range(tc.accum)]
            result = self.update(group, self.lr(tc.steps))
            bar.update(1)
            if result:
                pending.append(result)
            out_of_time = deadline is not None and time.monotonic() >= deadline
            if self.step % eval_every == 0 or self.step == tc.steps or out_of_time:
                row = self._summary("corpus", None, pending, time.perf_counter() - t0)
                eval_rng = np.random.default_rng(tc.seed + 1)  # the same windows every time
                row["val_loss"] = mean_loss(
                    self.model,
                    (
                        corpus.sample(tc.batch_size, seq_len, eval_rng, "val")
                        for _ in range(eval_batches)
                    ),
                )
                row["val_ppl"] = math.exp(min(row["val_loss"], 50.0))
                self._report(row)
                rows.append(row)
                if checkpoint is not None:
                    self.save(checkpoint, {"phase": "corpus", "rng": rng.bit_generator.state})
                if on_eval is not None:
                    on_eval(row)
                pending, t0 = [], time.perf_counter()
            if out_of_time:
                logger.info("stopping at the time budget of %s minutes", max_minutes)
                break
        bar.close()
        return rows

    # ------------------------------------------------------------------------------ bookkeeping

    def _summary(self, phase, epoch, results, seconds) -> dict:
        tokens = sum(r["tokens"] for r in results)
        row = {"phase": phase, "step": self.step}
        if epoch is not None:
            row["epoch"] = epoch
        row["loss"] = sum(r["loss"] * r["tokens"] for r in results) / max(tokens, 1)
        row["grad_norm"] = float(np.mean([r["grad_norm"] for r in results])) if results else 0.0
        row["lr"] = self.last_lr
        row["tokens_per_s"] = tokens / max(seconds, 1e-9)
        if self.model.config.adaptive_depth and results:  # recursion steps each token used
            depth = np.array([d for r in results for d in r["depth"]])  # (n, 4)
            row["depth_mean"] = float(depth[:, 0] @ depth[:, 1] / depth[:, 0].sum())
            row["depth_min"], row["depth_max"] = int(depth[:, 2].min()), int(depth[:, 3].max())
        return row

    def _report(self, row: dict):
        self.metrics.write(row)
        log_metrics("train", **row)

    def save(self, path: Path, state: dict):
        trainer_state = {"step": self.step, "seed": self.tc.seed, "train_config": asdict(self.tc)}
        save_checkpoint(path, self.model, self.opt.state_dict(), {**trainer_state, **state})


def _progress(total: int, done: int, what: str):
    """A progress bar on a terminal (stderr); nothing when the output goes to a file or pipe."""
    return tqdm(total=total, initial=done, desc=what, unit="update", leave=False, disable=None)


def _groups(batches: Iterable[Batch], size: int) -> Iterator[list[Batch]]:
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def mean_loss(model, batches: Iterable[Batch]) -> float:
    """Token-weighted mean loss over `batches` (no gradients)."""
    total = count = 0.0
    for b in batches:
        n = float(b.mask.sum())
        total += model.loss(b.inputs, b.targets, b.mask) * n
        count += n
    return total / count
