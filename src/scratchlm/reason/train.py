"""Training a reasoner under a time budget, and scoring it by difficulty.

Deep supervision as the paper's code runs it: a batch of `batch_size` slots, each holding a puzzle
and its carry (y, z). Every update runs ONE supervision step on every slot; a slot whose puzzle
halts (its halting logit q > 0, or `n_sup` steps done) gets a fresh puzzle and the initial state
at the next update, so the batch stays full and each puzzle gets up to `n_sup` steps. With
probability `halt_explore` a puzzle is kept for a random minimum of 2..n_sup steps first (the
paper's exploration). A direct model sees a fresh batch at every update. Fresh puzzles are drawn
from the training set with a random augmentation each (puzzles.augment).

AdamW (betas 0.9/0.95 as the paper), linear warm-up, then a cosine decay of the learning rate over
the time budget (or over `max_steps`, which tests use to make a run deterministic). An exponential
moving average of the weights (`ema`; its decay ramps up as min(ema, (1+t)/(10+t)) so that a short
run is not dominated by its first weights) is what evaluation and the saved model use.
Evaluation time does not count against the budget.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..optim import AdamW, clip_grad_norm, lr_at
from .config import FROZEN
from .model import Reasoner
from .puzzles import LEVELS, PuzzleSet, augment
from .sudoku import solved_rows
from .trm import initial_state, supervision_step


@dataclass
class TrainSettings:
    minutes: float = 20.0  # training time budget
    max_steps: int | None = None  # stop after this many updates instead (tests)
    batch_size: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    ema: float = 0.999  # 0: no moving average
    halt_explore: float = 0.1
    seed: int = 0
    eval_every: float = 2.0  # minutes of training between evaluations


class Trainer:
    def __init__(self, model: Reasoner, data: PuzzleSet, settings: TrainSettings):
        self.model, self.data, self.s = model, data, settings
        cfg, B = model.config, settings.batch_size
        self.rng = np.random.default_rng(settings.seed)
        trained = {n: p for n, p in model.params.items() if n not in FROZEN}
        self.opt = AdamW(
            trained,
            settings.lr,
            (0.9, 0.95),
            weight_decay=settings.weight_decay,
            no_decay=lambda name: False,
        )
        self.ema = {n: p.copy() for n, p in trained.items()}
        self.step, self.train_seconds, self.samples = 0, 0.0, 0
        self.puzzles = np.zeros((B, cfg.n_cells), dtype=np.int64)
        self.solutions = np.zeros_like(self.puzzles)
        self.y = self.z = None
        if cfg.kind != "direct":
            self.y, self.z = initial_state(model.params, B, cfg)
        self.steps_done = np.zeros(B, dtype=np.int64)
        self.halted = np.ones(B, dtype=bool)  # every slot starts by drawing a puzzle

    def lr(self) -> float:
        """Warm-up over the first updates, times a cosine over the budget spent so far."""
        s = self.s
        done = self.step / s.max_steps if s.max_steps else self.train_seconds / (60 * s.minutes)
        ticks = 10**6  # lr_at counts steps: the fraction of the budget in millionths
        cosine = lr_at(
            min(int(done * ticks), ticks),
            max_lr=s.lr,
            min_lr=s.lr * s.min_lr_ratio,
            warmup_steps=0,
            total_steps=ticks,
        )
        return cosine * min(1.0, (self.step + 1) / max(1, s.warmup_steps))

    def _refill(self) -> None:
        """Fresh augmented puzzles (and the initial state) in the slots that halted."""
        slots = np.flatnonzero(self.halted)
        pick = self.rng.integers(len(self.data.puzzles), size=len(slots))
        p, sol = augment(self.data.puzzles[pick], self.data.solutions[pick], self.rng)
        self.puzzles[slots], self.solutions[slots] = p, sol
        self.steps_done[slots] = 0
        if self.y is not None:
            self.y[slots] = self.model.params["y_init"]
            self.z[slots] = self.model.params["z_init"]
        self.samples += len(slots)

    def update(self) -> dict:
        """One supervision step on the batch and one optimizer update -> its metrics."""
        cfg, s = self.model.config, self.s
        self._refill()
        step = supervision_step(
            self.model.params, self.puzzles, self.y, self.z, cfg, self.solutions, grads=True
        )
        grad_norm = clip_grad_norm(step.grads, s.grad_clip)
        self.opt.step(step.grads, lr=self.lr())
        self.step += 1
        decay = min(s.ema, (1 + self.step) / (10 + self.step)) if s.ema else 0.0
        for name, e in self.ema.items():
            e *= decay
            e += (1 - decay) * self.model.params[name]
        if cfg.kind == "direct":
            self.halted[:] = True
        else:
            self.y, self.z = step.y, step.z
            self.steps_done += 1
            halted = (self.steps_done >= cfg.n_sup) | (step.q > 0)
            explore = self.rng.random(len(halted)) < s.halt_explore
            least = np.where(explore, self.rng.integers(2, cfg.n_sup + 1, size=len(halted)), 0)
            self.halted = halted & (self.steps_done >= least)
        return {
            "loss": step.loss,
            "ce": step.ce,
            "bce": step.bce,
            "train_exact": float(step.correct.mean()),
            "grad_norm": grad_norm,
        }

    def run(self, on_eval: Callable[["Trainer"], None] | None = None, bar=None) -> None:
        """Update until the budget is spent, calling on_eval every `eval_every` minutes and at
        the end; `bar` (a tqdm bar over seconds, or over steps with max_steps) is advanced."""
        s, next_eval, evaluated = self.s, 60 * self.s.eval_every, -1
        while (self.step < s.max_steps) if s.max_steps else (self.train_seconds < 60 * s.minutes):
            t = time.perf_counter()
            self.last = self.update()
            dt = time.perf_counter() - t
            self.train_seconds += dt
            if bar is not None:
                bar.update(1 if s.max_steps else dt)
                bar.set_postfix(
                    loss=f"{self.last['loss']:.3f}", exact=f"{self.last['train_exact']:.2f}"
                )
            if on_eval is not None and self.train_seconds >= next_eval:
                on_eval(self)
                next_eval, evaluated = next_eval + 60 * s.eval_every, self.step
        if on_eval is not None and evaluated != self.step:
            on_eval(self)  # the end, unless its last update was just evaluated

    def ema_model(self) -> Reasoner:
        """The model with the averaged weights (the model itself without an average)."""
        params = self.model.params | (self.ema if self.s.ema else {})
        return Reasoner(
            self.model.config,
            dtype=self.model.dtype,
            params={n: p.copy() for n, p in params.items()},
        )


def evaluate(model: Reasoner, data: PuzzleSet, batch: int = 512) -> dict:
    """Exact-puzzle rates on `data`: "per_step" (the rate after each supervision step), "final"
    and, per level name, the final rate among the puzzles of that level. A puzzle counts as solved
    only if the grid follows the rules and keeps the givens (sudoku.solved_rows)."""
    n_steps = 1 if model.config.kind == "direct" else model.config.n_sup
    solved = np.zeros((n_steps, len(data.puzzles)), dtype=bool)
    for start in range(0, len(data.puzzles), batch):
        part = slice(start, start + batch)
        for k, step in enumerate(model.run(data.puzzles[part].astype(np.int64))):
            solved[k, part] = solved_rows(step.predicted, data.puzzles[part])
    out = {"per_step": solved.mean(axis=1).tolist(), "final": float(solved[-1].mean())}
    for level, name in enumerate(LEVELS):
        mask = data.levels == level
        if mask.any():
            out[name] = float(solved[-1, mask].mean())
    return out
