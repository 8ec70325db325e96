"""Figures as PNG, when the optional `matplotlib` extra is installed (`pip install
scratchlm[plot]`); without it, nothing is drawn and the metrics files still have every number.
Every PNG is written atomically; a write that fails (a full disk) is a `WriteError` naming the
file.

- `plot_metrics`: one run's loss curves, and below them the gradient norm of each part;
- `plot_compare`: `compare`'s runs, validation loss against training seconds and against tokens;
- `plot_gradients`: `compare`'s runs, the gradient norm of each part and each recursion step's
  share of the block's gradient (gradients.py), at the end of each run;
- `plot_steps`: a reasoner's exact-solve rate after each supervision step (`scratchlm sudoku`).
"""

import logging
import re
from pathlib import Path

from .errors import WriteError
from .fileio import atomic_write

logger = logging.getLogger("scratchlm")


def _pyplot():
    """matplotlib's pyplot drawing to files only, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib is not installed: no plot")
        return None
    return plt


def _save(plt, fig, path: Path) -> bool:
    fig.tight_layout()
    try:
        with atomic_write(path, WriteError) as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
    return True


def plot_metrics(rows: list[dict], path: Path) -> bool:
    """Training loss, and the validation loss and exact-answer score where rows have them (e.g.
    only the chat phase of a two-phase run: a validation loss rising while the training loss falls
    is overfitting), against updates counted across phases; below, each part's gradient norm.
    Returns whether a PNG was written."""
    plt = _pyplot()
    if plt is None or not rows:
        return False
    grads = [r for r in rows if "grads" in r]
    fig, axes = plt.subplots(2 if grads else 1, 1, figsize=(7, 7 if grads else 4), squeeze=False)
    ax = axes[0, 0]
    x = updates(rows)
    ax.plot(x, [r["loss"] for r in rows], label="train loss")
    val = [(x_r, r["val_loss"]) for x_r, r in zip(x, rows, strict=True) if "val_loss" in r]
    if val:
        ax.plot(*zip(*val, strict=True), label="validation loss")
    ax.set_xlabel("update")
    ax.set_ylabel("cross-entropy (nats)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    exact = [(x_r, r["val_exact"]) for x_r, r in zip(x, rows, strict=True) if "val_exact" in r]
    if exact:
        right = ax.twinx()
        right.plot(*zip(*exact, strict=True), "g:", label="validation exact answers")
        right.set_ylim(0, 1)
        right.set_ylabel("fraction answered exactly")
        right.legend(loc="upper right")
    if grads:
        _gradient_norms(
            axes[1, 0], [x_r for x_r, r in zip(x, rows, strict=True) if "grads" in r], grads
        )
    return _save(plt, fig, path)


def _gradient_norms(ax, x, rows) -> None:
    for part in rows[-1]["grads"]["norm"]:
        ax.plot(x, [r["grads"]["norm"].get(part, float("nan")) for r in rows], label=part)
    ax.set_yscale("log")
    ax.set_xlabel("update")
    ax.set_ylabel("gradient norm (mean over the interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)


def updates(rows: list[dict]) -> list[int]:
    """The x of each row: its update counted from the start of the run. Each phase counts its
    own updates from 0 (`step`), so a new phase starts after the last update of the one before."""
    if "step" not in rows[0]:
        return list(range(1, len(rows) + 1))
    x, offset, last = [], 0, None
    for r in rows:
        if x and r.get("phase") != last:
            offset = x[-1]
        last = r.get("phase")
        x.append(offset + r["step"])
    return x


def plot_compare(results, path: Path, target: float | None = None) -> bool:
    """compare.Result of every run: validation loss against training seconds and tokens."""
    plt = _pyplot()
    runs = [r for r in results if r.curve]
    if plt is None or not runs:
        return False
    fig, (by_time, by_tokens) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colours = {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(r.variant for r in runs))}
    for r in runs:
        label = r.variant if r.seed == min(s.seed for s in runs if s.variant == r.variant) else None
        for ax, key in ((by_time, "train_s"), (by_tokens, "tokens")):
            ax.plot(
                [p[key] for p in r.curve],
                [p["val_loss"] for p in r.curve],
                colours[r.variant],
                label=label,
                alpha=0.8,
            )
    for ax, what in ((by_time, "training seconds"), (by_tokens, "tokens trained on")):
        ax.set_xlabel(what)
        ax.grid(alpha=0.3)
        if target is not None:
            ax.axhline(target, color="grey", linestyle=":", linewidth=1)
    by_time.set_ylabel("validation loss (nats)")
    by_time.legend(fontsize="small")
    return _save(plt, fig, path)


def plot_gradients(results, path: Path) -> bool:
    """For each variant (its first seed), in the last interval of its run: the gradient norm of
    each kind of part (a stack's blocks together: the root of the sum of their squares, so that
    a stack and a shared block compare), and each step's share of the block's gradient."""
    plt = _pyplot()
    last = {}
    for r in results:
        if r.variant not in last and "grads" in r.rows[-1]:
            last[r.variant] = r.rows[-1]["grads"]
    if plt is None or not last:
        return False
    fig, (norms, shares) = plt.subplots(1, 2, figsize=(12, 4.5))
    kinds = list(dict.fromkeys(_kind(p) for g in last.values() for p in g["norm"]))
    width = 0.8 / len(last)
    for i, (variant, grads) in enumerate(last.items()):
        squares = dict.fromkeys(kinds, 0.0)
        for part, norm in grads["norm"].items():
            squares[_kind(part)] += norm * norm
        x = [k + i * width for k in range(len(kinds))]
        norms.bar(x, [squares[k] ** 0.5 for k in kinds], width, color=f"C{i % 10}", label=variant)
        share = grads.get("step_share", [])
        steps = range(1, len(share) + 1)
        shares.plot(steps, share, "o-", color=f"C{i % 10}", label=variant)
    norms.set_xticks([k + 0.4 - width / 2 for k in range(len(kinds))], kinds, rotation=45)
    norms.set_yscale("log")
    norms.set_ylabel("gradient norm (last interval)")
    shares.set_xlabel("recursion step (or block of a stack)")
    shares.set_ylabel("share of the block's gradient norm")
    shares.xaxis.get_major_locator().set_params(integer=True)
    for ax in (norms, shares):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(plt, fig, path)


def _kind(part: str) -> str:
    """blocks.2.attn -> block.attn: the parts of a stack's blocks, taken together."""
    return re.sub(r"^blocks\.\d+\.", "block.", part)


def plot_steps(rates: dict[str, list[float]], path: Path, title: str) -> bool:
    """The exact-solve rate after each supervision step, one line per name in `rates` (say the
    difficulty levels); returns whether a PNG was written (False without matplotlib)."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in rates.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
    ax.set_xlabel("supervision step")
    ax.set_ylabel("puzzles solved exactly")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)
