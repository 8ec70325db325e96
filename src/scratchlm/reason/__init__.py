"""Recursive reasoning on puzzles: the Tiny Recursive Model of Jolicoeur-Martineau (2025) on 6x6
Sudoku, from scratch on NumPy (docs/reason.md).

    from scratchlm.reason import ReasonConfig, Reasoner, load_reasoner
    model = load_reasoner("out/sudoku.safetensors")
    result = model.solve(parse_grid("1.....|.3....|65.3..|....2.|..6.14|......"))
    result.grid, result.problems          # the answer, and how it breaks the rules ([] = solved)
"""

from .config import ReasonConfig
from .model import Reasoner, load_reasoner
from .sudoku import parse_grid

__all__ = ["ReasonConfig", "Reasoner", "load_reasoner", "parse_grid"]
