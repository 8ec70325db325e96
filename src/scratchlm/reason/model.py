"""A trained puzzle reasoner: its config and weights, solving, and its model file.

Model files are the language model's format (modelfile.py: `.safetensors` or `.json`, the SHA-256
digest over config and tensors, written atomically, never pickle), so every load check of the
language model applies; the config then says `"task": "sudoku6x6"` and its tensor table is that of
reason/config.py, which loading checks name by name and shape by shape. Not handled: training
checkpoints (a reasoner trains in one sitting, under a time budget).
"""

from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, InputError, ModelFileConfigError
from ..modelfile import check_finite, check_shapes, read_model_file, save_model
from .config import ReasonConfig, init_params, param_shapes
from .sudoku import N_CELLS, check_puzzle, rule_problems
from .trm import initial_state, supervision_step


class Solution(NamedTuple):
    """What the model made of one puzzle, step by step."""

    steps: list[np.ndarray]  # (6, 6) grid after each supervision step
    halt: list[float]  # the halting head's probability "the answer is right" after each step
    solved: list[bool]  # each step's grid checked against the rules (and the givens)
    problems: list[str]  # how the LAST grid breaks the rules ([] when it is solved)

    @property
    def grid(self) -> np.ndarray:
        return self.steps[-1]


class Reasoner:
    """A TRM (or a baseline) for 6x6 Sudoku: `Reasoner(ReasonConfig(...), seed=0)`."""

    tokenizer = None  # a puzzle model reads cells, not text (modelfile.save_model asks)

    def __init__(self, config: ReasonConfig, seed: int = 0, dtype="float32", params=None):
        self.config = config
        self.dtype = np.dtype(dtype)
        self.params = init_params(config, seed, dtype) if params is None else params

    @property
    def num_parameters(self) -> int:
        return sum(p.size for p in self.params.values())

    def run(self, puzzles, n_steps: int | None = None, params=None) -> list:
        """Supervision steps on puzzles (B, 36) from the initial state, without gradients: the
        list of `trm.Step`s (one for a direct model). `params` defaults to the model's own."""
        puzzles = _as_puzzles(puzzles)
        params, cfg = params or self.params, self.config
        if cfg.kind == "direct":
            return [supervision_step(params, puzzles, None, None, cfg)]
        y, z = initial_state(params, len(puzzles), cfg)
        steps = []
        for _ in range(cfg.n_sup if n_steps is None else n_steps):
            steps.append(supervision_step(params, puzzles, y, z, cfg))
            y, z = steps[-1].y, steps[-1].z
        return steps

    def solve(self, puzzle, source: str = "the puzzle") -> Solution:
        """Solve one puzzle (6, 6), after checking that it has exactly one solution (else a
        PuzzleError); every step's grid is checked against the rules before it counts."""
        puzzle = np.asarray(puzzle, dtype=np.int8).reshape(6, 6)
        check_puzzle(puzzle, source)
        grids, halt, solved = [], [], []
        for step in self.run(puzzle.reshape(1, N_CELLS)):
            grid = step.predicted[0].astype(np.int8).reshape(6, 6)
            grids.append(grid)
            halt.append(float(1.0 / (1.0 + np.exp(-step.q[0]))))
            solved.append(bool(np.all(grid != 0)) and not rule_problems(grid, puzzle))
        problems = rule_problems(grids[-1], puzzle)
        if np.any(grids[-1] == 0):
            problems.append(f"{int(np.sum(grids[-1] == 0))} cell(s) are left empty")
        return Solution(grids, halt, solved, problems)

    def save(self, path, description: str | None = None) -> str:
        """Write the model file atomically; return its sha256."""
        return save_model(path, self, description)


def _as_puzzles(puzzles) -> np.ndarray:
    puzzles = np.asarray(puzzles)
    if puzzles.ndim != 2 or puzzles.shape[1] != N_CELLS or puzzles.dtype.kind not in "iu":
        raise InputError(f"puzzles must be an integer array (B, {N_CELLS}), got {puzzles.shape}")
    if puzzles.size and (puzzles.min() < 0 or puzzles.max() > 6):
        raise InputError("puzzle cells must be 0 (empty) or a digit 1..6")
    return puzzles


def load_reasoner(path, dtype="float32") -> Reasoner:
    """A reasoner from its model file, after every check of modelfile.read_model_file (marker,
    version, digest) and of its config, tensor names, shapes and values."""
    mf = read_model_file(path)
    try:
        config = ReasonConfig.from_dict(mf.config)
    except (ConfigError, TypeError) as e:
        raise ModelFileConfigError(f"{mf.path}: config check failed: {e}") from e
    expected = param_shapes(config)
    check_shapes(mf.path, mf.tensors, expected)
    check_finite(mf.path, mf.tensors)
    params = {n: mf.tensors[n].astype(dtype) for n in expected}
    return Reasoner(config, dtype=dtype, params=params)
