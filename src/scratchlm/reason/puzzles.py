"""Puzzles made here: a generator of 6x6 Sudoku with one solution, a difficulty scale, the
augmentations of the paper, and train/test sets whose solution grids never meet.

- Difficulty (`LEVELS`), from `sudoku.singles_rounds`: *easy* puzzles fall to one round of
  singles, *medium* to 2-3 rounds, *hard* need 4 or more, and on *expert* ones singles get stuck
  (a person must guess or use a harder technique).
- Generation: a random solution grid, then its cells emptied in a random order as long as the
  solution stays unique (a *minimal* puzzle: no given can be removed); easy and medium puzzles get
  givens of the solution back until they are that easy. Each level is drawn by rejection.
- Augmentation (what the paper does to Sudoku): relabel the digits, permute the rows inside each
  band, the bands, the columns inside each stack and the stacks. Each maps a puzzle with one
  solution to another, of the same difficulty. (The transpose the paper also uses is no symmetry
  here: it turns 2x3 boxes into 3x2 ones.)
- Train/test split by *orbit*: two grids are the same up to augmentation when they have the same
  canonical form (the smallest relabelled image under the 3,456 row/column permutations). There
  are 49 orbits; a grid is a test grid when its canonical form hashes into a fixed fifth of the
  hash range, so no augmentation of a training grid is ever a test grid.
"""

import hashlib
import itertools
import random
from typing import NamedTuple

import numpy as np

from ..errors import DataError, WriteError
from ..fileio import atomic_write, check_file
from .sudoku import N_CELLS, SIZE, singles_rounds, solutions

LEVELS = ("easy", "medium", "hard", "expert")


def level_of(puzzle) -> int:
    """The index in LEVELS of a puzzle with one solution."""
    rounds = singles_rounds(puzzle)
    if rounds is None:
        return 3
    return 0 if rounds == 1 else 1 if rounds <= 3 else 2


def _transforms() -> np.ndarray:
    """Every permutation of rows inside bands, bands, columns inside stacks and stacks, as flat
    cell index maps (3456, 36): image[k] = grid[T[k]]."""
    maps = []
    for bands in itertools.permutations(range(3)):
        for flips in itertools.product((0, 1), repeat=3):
            rows = [2 * b + (i ^ flips[k]) for k, b in enumerate(bands) for i in range(2)]
            for stacks in itertools.permutations(range(2)):
                for orders in itertools.product(list(itertools.permutations(range(3))), repeat=2):
                    cols = [3 * s + orders[k][i] for k, s in enumerate(stacks) for i in range(3)]
                    maps.append([r * SIZE + c for r in rows for c in cols])
    out = np.array(maps, dtype=np.intp)
    out.flags.writeable = False
    return out


TRANSFORMS = _transforms()


def canonical_form(solution) -> bytes:
    """The smallest grid, read row by row, among the images of `solution` under TRANSFORMS, each
    relabelled so that its first row reads 1 2 3 4 5 6: the same for every grid of one orbit."""
    images = np.asarray(solution, dtype=np.intp).reshape(-1)[TRANSFORMS]  # (3456, 36)
    relabel = np.argsort(images[:, :SIZE], axis=1) + 1  # digit v -> its place in the first row
    canon = np.take_along_axis(relabel, images - 1, axis=1).astype(np.uint8)
    return canon[np.lexsort(canon.T[::-1])[0]].tobytes()


def split_of(solution) -> str:
    """ "test" for the grids of the orbits set aside for testing, "train" for the others."""
    return "test" if hashlib.sha256(canonical_form(solution)).digest()[0] < 52 else "train"


def random_solution(rng: random.Random, split: str) -> np.ndarray:
    """A random complete grid of the given split."""
    while True:
        grid = solutions(np.zeros((SIZE, SIZE), dtype=np.int8), limit=1, rng=rng)[0]
        if split_of(grid) == split:
            return grid


def minimal_puzzle(solution, rng: random.Random) -> np.ndarray:
    """Empty the cells of `solution` in a random order, each only if one solution remains."""
    puzzle = np.array(solution, dtype=np.int8).reshape(-1)
    for i in rng.sample(range(N_CELLS), N_CELLS):
        kept, puzzle[i] = puzzle[i], 0
        if len(solutions(puzzle.reshape(SIZE, SIZE), limit=2)) > 1:
            puzzle[i] = kept
    return puzzle.reshape(SIZE, SIZE)


def make_puzzle(level: int, split: str, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """(puzzle, solution) of difficulty LEVELS[level] from a grid of `split`."""
    while True:
        solution = random_solution(rng, split)
        puzzle = minimal_puzzle(solution, rng)
        found = level_of(puzzle)
        if level >= 2:
            if found == level:
                return puzzle, solution
            continue
        empty = [i for i in range(N_CELLS) if puzzle.flat[i] == 0]
        for i in rng.sample(empty, len(empty)):  # givens back until the puzzle is easy enough
            if found <= level:
                break
            puzzle.flat[i] = solution.flat[i]
            found = level_of(puzzle)
        if found == level:
            return puzzle, solution


class PuzzleSet(NamedTuple):
    puzzles: np.ndarray  # (N, 36) int8, 0 for an empty cell
    solutions: np.ndarray  # (N, 36) int8
    levels: np.ndarray  # (N,) index into LEVELS


def make_set(counts: dict[int, int], split: str, seed: int, progress=None) -> PuzzleSet:
    """`counts[level]` puzzles of each level, from grids of `split`, in a shuffled order.
    `progress(k)` is called after each puzzle (a progress bar)."""
    rng = random.Random(f"{split}-{seed}")
    rows = []
    for level, count in counts.items():
        for _ in range(count):
            rows.append((*make_puzzle(level, split, rng), level))
            if progress is not None:
                progress(1)
    rng.shuffle(rows)
    puzzles, sols, levels = zip(*rows, strict=True) if rows else ((), (), ())
    return PuzzleSet(
        np.array(puzzles, dtype=np.int8).reshape(-1, N_CELLS),
        np.array(sols, dtype=np.int8).reshape(-1, N_CELLS),
        np.array(levels, dtype=np.int64),
    )


def augment(puzzles, sols, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random augmentation per puzzle (and the same on its solution): (N, 36) each."""
    n = len(puzzles)
    cells = TRANSFORMS[rng.integers(len(TRANSFORMS), size=n)]  # (N, 36)
    relabel = np.zeros((n, SIZE + 1), dtype=np.int8)  # 0 (empty) stays 0
    relabel[:, 1:] = rng.permuted(np.tile(np.arange(1, SIZE + 1, dtype=np.int8), (n, 1)), axis=1)
    rows = np.arange(n)[:, None]
    new_puzzles = relabel[rows, np.take_along_axis(puzzles, cells, axis=1)]
    new_sols = relabel[rows, np.take_along_axis(sols, cells, axis=1)]
    return new_puzzles, new_sols


def save_set(path, data: PuzzleSet) -> None:
    """Write a puzzle set as a .npz file (plain arrays, no pickle), atomically."""
    with atomic_write(path, WriteError) as f:
        np.savez(f, puzzles=data.puzzles, solutions=data.solutions, levels=data.levels)


def load_set(path) -> PuzzleSet:
    """A puzzle set written by `save_set`; DataError if it is not one."""
    check_file(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = PuzzleSet(f["puzzles"], f["solutions"], f["levels"])
    except (OSError, ValueError, KeyError) as e:
        raise DataError(
            f"{path}: not a puzzle set (.npz of puzzles, solutions, levels): {e}"
        ) from e
    n = len(data.puzzles)
    if (
        data.puzzles.shape != (n, N_CELLS)
        or data.solutions.shape != (n, N_CELLS)
        or data.levels.shape != (n,)
    ):
        raise DataError(f"{path}: the arrays of the puzzle set have inconsistent shapes")
    return data
