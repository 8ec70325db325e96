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
    """Training (and validation) loss against updates; returns whether a PNG was written."""
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
    steps = list(range(1, len(rows) + 1)) if "step" not in rows[0] else [r["step"] for r in rows]
    ax.plot(steps, [r["loss"] for r in rows], label="train loss")
    if "val_loss" in rows[0]:
        ax.plot(steps, [r["val_loss"] for r in rows], label="validation loss")
    ax.set_xlabel("update")
    ax.set_ylabel("cross-entropy (nats)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_write(path, WriteError) as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
    return True
