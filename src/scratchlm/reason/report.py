"""How a reasoner's work is shown: grids side by side, one per supervision step, and the plot of
the exact-solve rate against supervision steps (with the optional matplotlib extra)."""

import logging
from pathlib import Path

import numpy as np

from ..errors import WriteError
from ..fileio import atomic_write
from .sudoku import format_grid

logger = logging.getLogger("scratchlm")


def side_by_side(grids: list[np.ndarray], titles: list[str], per_row: int = 4) -> str:
    """Grids drawn next to each other, `per_row` to a row of text, each under its title; a cell
    that differs from the grid before it is marked with `*` after its digit."""
    blocks = []
    for k, grid in enumerate(grids):
        lines = format_grid(grid).splitlines()
        if k:
            changed = np.asarray(grid) != np.asarray(grids[k - 1])
            lines = _mark(lines, changed)
        blocks.append([titles[k]] + lines)
    width = max(len(line) for block in blocks for line in block) + 3
    out = []
    for start in range(0, len(blocks), per_row):
        row = blocks[start : start + per_row]
        for i in range(len(row[0])):
            out.append("".join(b[i].ljust(width) for b in row).rstrip())
        out.append("")
    return "\n".join(out).rstrip()


def _mark(lines: list[str], changed: np.ndarray) -> list[str]:
    """Put `*` in the space after each changed digit of a format_grid drawing."""
    out, r = [], 0
    for line in lines:
        if line.startswith("-"):
            out.append(line)
            continue
        chars, c = list(line), 0
        for pos, ch in enumerate(line):
            if ch.isdigit() or ch == ".":
                if changed[r, c] and pos + 1 < len(chars):
                    chars[pos + 1] = "*"
                c += 1
        out.append("".join(chars))
        r += 1
    return out


def plot_steps(rates: dict[str, list[float]], path: Path, title: str) -> bool:
    """The exact-solve rate after each supervision step, one line per name in `rates` (say the
    difficulty levels); returns whether a PNG was written (False without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib is not installed: no plot")
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
    fig.tight_layout()
    try:
        with atomic_write(path, WriteError) as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
    return True
