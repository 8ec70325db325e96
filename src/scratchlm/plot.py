"""Loss curves as a PNG, when the optional `matplotlib` extra is installed (`pip install
scratchlm[plot]`); without it, nothing is drawn and the metrics file still has every number.
The PNG is written atomically; a write that fails (a full disk) is a `WriteError` naming the
file."""

import logging
from pathlib import Path

from .errors import WriteError
from .fileio import atomic_write

logger = logging.getLogger("scratchlm")


def plot_metrics(rows: list[dict], path: Path) -> bool:
    """Training loss, and the validation loss and exact-answer score where rows have them (e.g.
    only the chat phase of a two-phase run: a validation loss rising while the training loss falls
    is overfitting), against updates counted across phases; returns whether a PNG was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib is not installed: no loss plot")
        return False
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
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
    fig.tight_layout()
    try:
        with atomic_write(path, WriteError) as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
    return True


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
