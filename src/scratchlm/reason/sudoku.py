"""6x6 Sudoku (boxes of 2 rows x 3 columns): reading a puzzle, the rules, a solver, a difficulty.

A grid is a (6, 6) integer array: 0 for an empty cell, 1..6 for a digit. The rules: every row,
every column and every 2x3 box holds each digit once. A *puzzle* is a grid with empty cells that
has exactly one solution.

- `parse_grid` / `read_puzzle` read a puzzle typed or saved as text (36 cells; `.`, `0` or `_`
  for an empty one; the lines and crosses that `format_grid` draws are ignored, so a printed grid
  reads back) and `check_puzzle` refuses a wrong size, a foreign symbol, two equal digits in one
  unit, no solution or several, each with a `PuzzleError` naming the cell or the count.
- `rule_problems` is the one check of the rules, used before any grid is called solved.
- `solutions` is an exact depth-first search (most constrained cell first, bit masks).
- `singles_rounds` is the difficulty: how many rounds of naked and hidden singles a person needs.

Not handled: other sizes (9x9 would need only other constants, but nothing here is tested on it).
"""

import random
from pathlib import Path

import numpy as np

from ..errors import DataError, PuzzleError
from ..fileio import check_file, decode_utf8, os_errors

SIZE, BOX_ROWS, BOX_COLS = 6, 2, 3
N_CELLS = SIZE * SIZE
FULL = (1 << SIZE) - 1  # the bit mask of every digit: bit d-1 stands for digit d
_EMPTY, _IGNORED = ".0_", "|-+"

ROW = [i // SIZE for i in range(N_CELLS)]
COL = [i % SIZE for i in range(N_CELLS)]
BOX = [(r // BOX_ROWS) * (SIZE // BOX_COLS) + c // BOX_COLS for r, c in zip(ROW, COL, strict=True)]
# The 18 units (6 rows, 6 columns, 6 boxes) as lists of flat cell indices, with their names.
UNITS = (
    [[i for i in range(N_CELLS) if ROW[i] == k] for k in range(SIZE)]
    + [[i for i in range(N_CELLS) if COL[i] == k] for k in range(SIZE)]
    + [[i for i in range(N_CELLS) if BOX[i] == k] for k in range(SIZE)]
)
UNIT_NAMES = [f"{kind} {k + 1}" for kind in ("row", "column", "box") for k in range(SIZE)]
_POPCOUNT = [bin(m).count("1") for m in range(FULL + 1)]
_DIGITS_OF = [[d + 1 for d in range(SIZE) if m >> d & 1] for m in range(FULL + 1)]


def cell_name(i: int) -> str:
    return f"row {ROW[i] + 1}, column {COL[i] + 1}"


# ----------------------------------------------------------------------------- reading


def parse_grid(text: str, source: str = "the puzzle") -> np.ndarray:
    """The (6, 6) grid written in `text`; PuzzleError for a foreign symbol or a wrong count."""
    cells = []
    for line_no, line in enumerate(text.splitlines(), 1):
        for col_no, ch in enumerate(line, 1):
            if ch.isspace() or ch in _IGNORED:
                continue
            if ch in _EMPTY:
                cells.append(0)
            elif "1" <= ch <= str(SIZE):
                cells.append(int(ch))
            else:
                raise PuzzleError(
                    f"{source}: line {line_no}, character {col_no}: {ch!r} is not a cell "
                    f"(use the digits 1-{SIZE}, and '.', '0' or '_' for an empty cell)",
                    "symbol",
                )
    if len(cells) != N_CELLS:
        raise PuzzleError(
            f"{source}: {len(cells)} cells, but a {SIZE}x{SIZE} puzzle has {N_CELLS}", "size"
        )
    return np.array(cells, dtype=np.int8).reshape(SIZE, SIZE)


def read_puzzle(path) -> np.ndarray:
    """The grid in the text file `path` (see `parse_grid`); read errors name the file."""
    check_file(path, PuzzleError)
    with os_errors(path, PuzzleError, "read the file"):
        data = Path(path).read_bytes()
    try:
        text = decode_utf8(path, data)
    except DataError as e:
        raise PuzzleError(str(e), "symbol") from None
    return parse_grid(text, str(path))


def format_grid(grid, empty: str = ".") -> str:
    """The grid drawn with a line between bands and a bar between stacks (it parses back)."""
    grid = np.asarray(grid).reshape(SIZE, SIZE)
    lines = []
    for r in range(SIZE):
        if r and r % BOX_ROWS == 0:
            lines.append("+".join(["-" * (2 * BOX_COLS + 1)] * (SIZE // BOX_COLS)))
        stacks = [
            " ".join(str(v) if v else empty for v in grid[r, s : s + BOX_COLS])
            for s in range(0, SIZE, BOX_COLS)
        ]
        lines.append(" " + " | ".join(stacks))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the rules


def rule_problems(grid, puzzle=None) -> list[str]:
    """Every way `grid` breaks the rules, in words (empty: it follows them). With `puzzle`, also
    every given that the grid changed. Empty cells are not a problem here (see `is_solved`)."""
    flat = np.asarray(grid).reshape(-1)
    problems = []
    for name, unit in zip(UNIT_NAMES, UNITS, strict=True):
        values = [int(flat[i]) for i in unit if flat[i]]
        for d in sorted({v for v in values if values.count(v) > 1}):
            problems.append(f"{name} has {values.count(d)} {d}s")
    bad = [v for v in flat if not 0 <= v <= SIZE]
    if bad:
        problems.append(f"{len(bad)} cell(s) hold a value outside 0..{SIZE}")
    if puzzle is not None:
        given = np.asarray(puzzle).reshape(-1)
        for i in np.flatnonzero((given != 0) & (flat != given)):
            problems.append(f"the given {given[i]} at {cell_name(i)} was changed to {flat[i]}")
    return problems


def is_solved(grid, puzzle=None) -> bool:
    """Whether `grid` is a complete grid that follows the rules (and keeps the puzzle's givens)."""
    return bool(np.all(np.asarray(grid) != 0)) and not rule_problems(grid, puzzle)


def solved_rows(grids, puzzles) -> np.ndarray:
    """For many grids at once (N, 36): whether each is complete, follows the rules and keeps its
    puzzle's givens (the vectorised `is_solved`, for evaluations)."""
    grids, puzzles = (
        np.asarray(grids).reshape(-1, N_CELLS),
        np.asarray(puzzles).reshape(-1, N_CELLS),
    )
    units = np.sort(grids[:, np.array(UNITS)], axis=-1)  # (N, 18, 6)
    follows = np.all(units == np.arange(1, SIZE + 1), axis=(1, 2))
    return follows & np.all((puzzles == 0) | (grids == puzzles), axis=1)


def check_puzzle(grid, source: str = "the puzzle") -> np.ndarray:
    """The one solution of `grid`; PuzzleError if two givens clash, or there is none or several."""
    problems = rule_problems(grid)
    if problems:
        raise PuzzleError(
            f"{source}: the givens break the rules: {'; '.join(problems)}", "contradiction"
        )
    found = solutions(grid, limit=2)
    if not found:
        raise PuzzleError(f"{source}: the puzzle has no solution", "no_solution")
    if len(found) > 1:
        raise PuzzleError(
            f"{source}: the puzzle has several solutions ({int(np.sum(grid != 0))} givens); "
            "add givens until only one is left",
            "several_solutions",
        )
    return found[0]


# ----------------------------------------------------------------------------- solving


def _masks(cells: list[int]) -> tuple[list[int], list[int], list[int]]:
    """The digits used in each row, column and box, as bit masks."""
    rows, cols, boxes = [0] * SIZE, [0] * SIZE, [0] * SIZE
    for i, v in enumerate(cells):
        if v:
            bit = 1 << (v - 1)
            rows[ROW[i]] |= bit
            cols[COL[i]] |= bit
            boxes[BOX[i]] |= bit
    return rows, cols, boxes


def solutions(grid, limit: int = 2, rng: random.Random | None = None) -> list[np.ndarray]:
    """Up to `limit` solutions of a grid whose givens follow the rules (depth-first search that
    fills the cell with the fewest candidates first; with `rng`, trying its digits in a random
    order, so that the first solution of an empty grid is a random grid)."""
    cells = [int(v) for v in np.asarray(grid).reshape(-1)]
    rows, cols, boxes = _masks(cells)
    empties = [i for i in range(N_CELLS) if not cells[i]]
    found: list[np.ndarray] = []

    def search(k: int) -> bool:  # k cells of `empties` are filled; True: stop, enough found
        if k == len(empties):
            found.append(np.array(cells, dtype=np.int8).reshape(SIZE, SIZE))
            return len(found) >= limit
        best, best_mask, best_n = -1, 0, SIZE + 1
        for j in range(k, len(empties)):  # the unfilled empties are kept at the end of the list
            i = empties[j]
            m = FULL & ~(rows[ROW[i]] | cols[COL[i]] | boxes[BOX[i]])
            if _POPCOUNT[m] < best_n:
                best, best_mask, best_n = j, m, _POPCOUNT[m]
                if best_n <= 1:
                    break
        if best_n == 0:
            return False
        empties[k], empties[best] = empties[best], empties[k]
        i = empties[k]
        digits = _DIGITS_OF[best_mask]
        if rng is not None:
            digits = rng.sample(digits, len(digits))
        for d in digits:
            bit = 1 << (d - 1)
            cells[i] = d
            rows[ROW[i]] |= bit
            cols[COL[i]] |= bit
            boxes[BOX[i]] |= bit
            stop = search(k + 1)
            rows[ROW[i]] ^= bit
            cols[COL[i]] ^= bit
            boxes[BOX[i]] ^= bit
            if stop:
                cells[i] = 0
                return True
        cells[i] = 0
        return False

    search(0)
    return found


def singles_rounds(grid) -> int | None:
    """How many rounds of singles solve the puzzle, or None if singles get stuck (search needed).

    One round finds, on the grid as it stands, every naked single (a cell with one candidate left)
    and every hidden single (a digit with one place left in a row, column or box), and fills them
    all at once. A puzzle solved in one round needs no chain of reasoning; each further round
    needs the digits the round before placed.
    """
    cells = [int(v) for v in np.asarray(grid).reshape(-1)]
    rounds = 0
    while 0 in cells:
        rows, cols, boxes = _masks(cells)
        cand = [
            0 if cells[i] else FULL & ~(rows[ROW[i]] | cols[COL[i]] | boxes[BOX[i]])
            for i in range(N_CELLS)
        ]
        placed = {i: _DIGITS_OF[m][0] for i, m in enumerate(cand) if _POPCOUNT[m] == 1}
        for unit in UNITS:
            for d in range(SIZE):
                spots = [i for i in unit if cand[i] >> d & 1]
                if len(spots) == 1:
                    placed[spots[0]] = d + 1
        if not placed:
            return None
        for i, d in placed.items():
            cells[i] = d
        rounds += 1
    return rounds
