"""6x6 Sudoku: reading puzzles, the rules, the solver, the difficulty scale, the generator, the
augmentations and the train/test split (reason/sudoku.py, reason/puzzles.py)."""

import random

import numpy as np
import pytest

from scratchlm.errors import PuzzleError, ScratchLMError
from scratchlm.reason.puzzles import (
    LEVELS,
    TRANSFORMS,
    augment,
    canonical_form,
    level_of,
    load_set,
    make_puzzle,
    make_set,
    minimal_puzzle,
    random_solution,
    save_set,
    split_of,
)
from scratchlm.reason.sudoku import (
    check_puzzle,
    format_grid,
    is_solved,
    parse_grid,
    read_puzzle,
    rule_problems,
    singles_rounds,
    solutions,
    solved_rows,
)

SOLUTION = parse_grid("123456 456123 231564 564231 312645 645312")
# A hard puzzle with one solution, as `scratchlm sudoku generate` prints it.
PUZZLE_TEXT = """
 1 . . | . . .
 . 3 . | . . .
-------+-------
 6 5 . | 3 . .
 . . . | . 2 .
-------+-------
 . . 6 | . 1 4
 . . . | . . .
"""


@pytest.fixture(scope="module")
def puzzle_and_solution():
    puzzle = parse_grid(PUZZLE_TEXT)
    return puzzle, check_puzzle(puzzle)


def test_the_rules():
    assert is_solved(SOLUTION) and rule_problems(SOLUTION) == []
    bad = SOLUTION.copy()
    bad[0, 0], bad[0, 1] = bad[0, 1], bad[0, 0]  # the row and the box stay fine, columns break
    assert not is_solved(bad)
    assert "column 1 has 2 2s" in rule_problems(bad)
    partial = SOLUTION.copy()
    partial[2, 3] = 0
    assert rule_problems(partial) == [] and not is_solved(partial)  # follows the rules, not done
    puzzle = np.zeros_like(SOLUTION)
    puzzle[0, 0] = 2
    assert rule_problems(SOLUTION, puzzle) == ["the given 2 at row 1, column 1 was changed to 1"]


def test_solved_rows_agrees_with_is_solved():
    rng = random.Random(0)
    grids = [SOLUTION.copy() for _ in range(6)]
    grids[1][0, 0] = 0
    grids[2][[0, 1]] = grids[2][[1, 0]]  # swapped rows: rows fine, boxes fine, columns fine
    grids[3][0, 0], grids[3][0, 3] = grids[3][0, 3], grids[3][0, 0]
    grids[4] = random_solution(rng, "train")
    puzzles = [np.zeros_like(SOLUTION)] * 5 + [SOLUTION * (np.arange(36).reshape(6, 6) % 2)]
    grids[5] = grids[4]
    fast = solved_rows(np.array(grids).reshape(6, 36), np.array(puzzles).reshape(6, 36))
    assert list(fast) == [is_solved(g, p) for g, p in zip(grids, puzzles, strict=True)]
    assert list(fast) == [True, False, True, False, True, False]


def test_format_parses_back(puzzle_and_solution):
    puzzle, _ = puzzle_and_solution
    assert np.array_equal(parse_grid(format_grid(puzzle)), puzzle)
    assert np.array_equal(parse_grid("0" * 36), np.zeros((6, 6)))
    assert np.array_equal(parse_grid("_" * 36), np.zeros((6, 6)))


def test_solver(puzzle_and_solution):
    puzzle, solution = puzzle_and_solution
    assert is_solved(solution, puzzle)
    assert len(solutions(puzzle, limit=5)) == 1
    assert len(solutions(np.zeros((6, 6), dtype=np.int8), limit=3)) == 3
    g = random_solution(random.Random(1), "train")
    assert is_solved(g)


@pytest.mark.parametrize(
    "text,kind,words",
    [
        ("123", "size", "3 cells, but a 6x6 puzzle has 36"),
        ("1" * 37, "size", "37 cells"),
        ("", "size", "0 cells"),
        ("." * 20 + "7" + "." * 15, "symbol", "line 1, character 21: '7'"),
        (".\n..x" + "." * 33, "symbol", "line 2, character 3: 'x'"),
        ("é" + "." * 35, "symbol", "'é'"),
        ("11" + "." * 34, "contradiction", "row 1 has 2 1s"),
        ("1" + "." * 5 + "1" + "." * 29, "contradiction", "column 1 has 2 1s"),
        ("." * 36, "several_solutions", "several solutions (0 givens)"),
        ("12345." + "....6." + "." * 24, "no_solution", "no solution"),
    ],
    ids=[
        "short",
        "long",
        "empty",
        "digit 7",
        "letter",
        "unicode",
        "row",
        "column",
        "blank",
        "impossible",
    ],
)
def test_malformed_puzzles(text, kind, words):
    with pytest.raises(PuzzleError) as e:
        check_puzzle(parse_grid(text, "typed"), "typed")
    assert e.value.kind == kind and words in str(e.value) and str(e.value).startswith("typed")
    assert isinstance(e.value, ScratchLMError)


def test_read_puzzle(tmp_path, puzzle_and_solution):
    path = tmp_path / "p.txt"
    path.write_text(PUZZLE_TEXT)
    assert np.array_equal(read_puzzle(path), puzzle_and_solution[0])
    with pytest.raises(PuzzleError, match="no such file"):
        read_puzzle(tmp_path / "missing.txt")
    with pytest.raises(PuzzleError, match="is a directory"):
        read_puzzle(tmp_path)
    (tmp_path / "bad.txt").write_bytes(b"\xff" + b"." * 35)
    with pytest.raises(PuzzleError, match="invalid UTF-8"):
        read_puzzle(tmp_path / "bad.txt")


def test_singles_rounds():
    one_hole = SOLUTION.copy()
    one_hole[3, 3] = 0
    assert singles_rounds(one_hole) == 1 and level_of(one_hole) == 0
    assert singles_rounds(SOLUTION) == 0
    assert singles_rounds(np.zeros((6, 6), dtype=np.int8)) is None  # nothing is forced


@pytest.mark.parametrize("level", range(4), ids=LEVELS)
def test_generator_makes_each_level(level):
    rng = random.Random(level)
    puzzle, solution = make_puzzle(level, "test", rng)
    assert np.array_equal(check_puzzle(puzzle), solution) and split_of(solution) == "test"
    assert level_of(puzzle) == level
    if level >= 2:  # hard and expert puzzles are minimal: no given can go
        for i in np.flatnonzero(puzzle):
            fewer = puzzle.copy().reshape(-1)
            fewer[i] = 0
            assert len(solutions(fewer.reshape(6, 6), limit=2)) == 2


def test_minimal_puzzle_is_unique():
    puzzle = minimal_puzzle(SOLUTION, random.Random(3))
    assert np.array_equal(check_puzzle(puzzle), SOLUTION)


def test_augmentations_keep_puzzles_valid_and_orbits_fixed():
    data = make_set({2: 3, 3: 2}, "train", seed=4)
    rng = np.random.default_rng(0)
    for _ in range(3):
        p, s = augment(data.puzzles, data.solutions, rng)
        for k in range(len(p)):
            puzzle, solution = p[k].reshape(6, 6), s[k].reshape(6, 6)
            assert np.array_equal(check_puzzle(puzzle), solution)
            assert level_of(puzzle) == data.levels[k]  # the difficulty is a symmetry invariant
            assert canonical_form(solution) == canonical_form(data.solutions[k])
            assert not np.array_equal(puzzle.reshape(-1), data.puzzles[k])


def test_transforms_are_a_group_of_distinct_permutations():
    assert TRANSFORMS.shape == (3456, 36)
    assert len({t.tobytes() for t in TRANSFORMS}) == 3456
    assert all(sorted(t) == list(range(36)) for t in TRANSFORMS[::97])


def test_split_is_disjoint_by_orbit():
    rng = random.Random(5)
    train = [random_solution(rng, "train") for _ in range(30)]
    test = [random_solution(rng, "test") for _ in range(15)]
    assert {canonical_form(g) for g in train}.isdisjoint({canonical_form(g) for g in test})
    relabelled = np.argsort(np.random.default_rng(1).permutation(6))[test[0] - 1] + 1
    assert split_of(relabelled) == "test"  # a relabelled test grid is still a test grid


def test_set_round_trip(tmp_path):
    data = make_set({0: 2, 1: 2}, "test", seed=6)
    assert sorted(data.levels) == [0, 0, 1, 1]
    save_set(tmp_path / "s.npz", data)
    back = load_set(tmp_path / "s.npz")
    assert all(np.array_equal(a, b) for a, b in zip(data, back, strict=True))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ScratchLMError, match="not a puzzle set"):
        load_set(tmp_path / "bad.npz")
