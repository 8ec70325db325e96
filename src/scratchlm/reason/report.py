"""How a reasoner's work is shown: grids side by side, one per supervision step (the plot of the
exact-solve rate against supervision steps is plot.plot_steps, with the other figures)."""

import numpy as np

from .sudoku import format_grid


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
