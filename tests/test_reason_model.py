"""The reasoner as a product: model files (the language model's format and checks), solving with
the rule check, training under a budget, and the `scratchlm sudoku` command."""

import numpy as np
import pytest

from scratchlm import ModelConfig, load_model
from scratchlm.cli import main
from scratchlm.errors import (
    ModelFileConfigError,
    ModelFileError,
    ModelFileIntegrityError,
    PuzzleError,
)
from scratchlm.model import Model
from scratchlm.reason.config import ReasonConfig
from scratchlm.reason.model import Reasoner, load_reasoner
from scratchlm.reason.puzzles import make_set, save_set
from scratchlm.reason.sudoku import format_grid, parse_grid
from scratchlm.reason.train import Trainer, TrainSettings, evaluate

SMALL = dict(d_model=8, n=2, T=2, n_sup=3, expansion=1.0)
GRID = "123456 456123 231564 564231 312645 645312"


def copy_model() -> Reasoner:
    """A direct model that writes each cell's own digit back (0 for an empty cell): with zero
    layer weights the network only normalises, and a one-hot embedding survives it."""
    model = Reasoner(ReasonConfig(kind="direct", d_model=8, expansion=1.0), dtype="float64")
    for p in model.params.values():
        p[...] = 0.0
    model.params["tok_emb"][:, :7] = np.eye(7)
    model.params["head.w"][:7] = np.eye(7)
    return model


@pytest.fixture(scope="module")
def data():
    return make_set({1: 6, 2: 6}, "train", seed=0)


@pytest.mark.parametrize("ext", [".safetensors", ".json"])
def test_model_file_round_trip(tmp_path, ext):
    model = Reasoner(ReasonConfig(**SMALL, mixer="attention", n_heads=2), seed=3)
    sha = model.save(tmp_path / f"m{ext}")
    back = load_reasoner(tmp_path / f"m{ext}")
    assert back.config == model.config and back.params.keys() == model.params.keys()
    assert all(np.array_equal(back.params[n], model.params[n]) for n in model.params)
    assert sha == Reasoner(model.config, seed=3).save(tmp_path / f"again{ext}")


def test_model_file_checks(tmp_path):
    Reasoner(ReasonConfig(**SMALL)).save(tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    (tmp_path / "tampered.json").write_text(text.replace('"n_sup": 3', '"n_sup": 4'))
    with pytest.raises(ModelFileIntegrityError):
        load_reasoner(tmp_path / "tampered.json")
    Model(ModelConfig(vocab_size=10, d_model=16, n_heads=2, d_ff=16)).save(tmp_path / "lm.json")
    with pytest.raises(ModelFileConfigError, match="not a puzzle model"):
        load_reasoner(tmp_path / "lm.json")
    with pytest.raises(ModelFileError):  # and the language model refuses a puzzle model
        load_model(tmp_path / "m.json")


def test_solve_checks_the_rules():
    model = copy_model()
    full = parse_grid(GRID)
    result = model.solve(full)
    assert result.problems == [] and result.solved == [True]
    holes = full.copy()
    holes[0, :2] = 0
    result = model.solve(holes)  # the model leaves the two empty cells empty
    assert result.problems == ["2 cell(s) are left empty"] and result.solved == [False]
    model.params["head.w"][:7] = np.eye(7)[:, [0, 2, 1, 3, 4, 5, 6]]  # writes 2 for 1, 1 for 2
    result = model.solve(full)
    assert "the given 1 at row 1, column 1 was changed to 2" in result.problems
    with pytest.raises(PuzzleError, match="several solutions"):
        model.solve(np.zeros((6, 6), dtype=int))


def test_evaluate_counts_rule_checked_grids(data):
    scores = evaluate(copy_model(), data)
    assert scores["final"] == 0.0 and scores["per_step"] == [0.0]  # copying the givens solves none
    full = data._replace(puzzles=data.solutions.copy())
    assert evaluate(copy_model(), full)["final"] == 1.0


@pytest.mark.parametrize("loss", ["stablemax", "softmax"])
def test_training_learns_and_is_deterministic(data, loss):
    def run():
        model = Reasoner(ReasonConfig(**SMALL, loss=loss), seed=1)
        settings = TrainSettings(max_steps=30, batch_size=8, lr=1e-2, warmup_steps=5, seed=2)
        trainer = Trainer(model, data, settings)
        return model, trainer, [trainer.update()["ce"] for _ in range(30)]

    (m1, t1, l1), (m2, _, l2) = run(), run()
    assert l1 == l2 and all(np.array_equal(m1.params[n], m2.params[n]) for n in m1.params)
    assert np.mean(l1[-5:]) < np.mean(l1[:5]) - 0.1  # consecutive losses differ by ~0.03
    assert np.array_equal(t1.ema_model().params["y_init"], m1.params["y_init"])  # never trained


def test_deep_supervision_refills_halted_slots(data):
    cfg = ReasonConfig(**SMALL)  # n_sup = 3, and q < 0 at the start (halt bias -5)
    trainer = Trainer(Reasoner(cfg), data, TrainSettings(batch_size=4, halt_explore=0.0))
    for k in range(1, 7):
        trainer.update()
        assert list(trainer.steps_done) == [(k - 1) % 3 + 1] * 4
    assert trainer.samples == 8  # two rounds of 4 puzzles


def test_cli_generate_train_solve_eval(tmp_path, capsys, data):
    assert main(["sudoku", "generate", "--level", "expert", "--seed", "1"]) == 0
    puzzle = parse_grid(capsys.readouterr().out)
    save_set(tmp_path / "train.npz", data)
    model_path = tmp_path / "m.safetensors"
    args = ["sudoku", "train", "--max-steps", "2", "--train-set", str(tmp_path / "train.npz")]
    args += ["--d-model", "8", "--n", "2", "--T", "1", "--n-sup", "2", "--batch-size", "4"]
    assert main([*args, "--eval-puzzles", "2", "--output", str(model_path)]) == 0
    assert "saved" in capsys.readouterr().out
    (tmp_path / "p.txt").write_text(format_grid(puzzle))
    code = main(["sudoku", "solve", str(model_path), "--file", str(tmp_path / "p.txt"), "--steps"])
    out = capsys.readouterr().out
    assert code == 1 and "not solved:" in out and "step 2 (halt" in out  # 2 updates: no solver
    copy_model().save(tmp_path / "copy.json")
    assert main(["sudoku", "solve", str(tmp_path / "copy.json"), GRID]) == 0
    assert "solved (checked against the rules), first right after step 1" in capsys.readouterr().out
    test_set, plot = str(tmp_path / "train.npz"), tmp_path / "steps.png"
    assert (
        main(["sudoku", "eval", str(model_path), "--test-set", test_set, "--plot", str(plot)]) == 0
    )
    out = capsys.readouterr().out
    assert "level=medium puzzles=6" in out and "step=2 medium=" in out
    assert plot.stat().st_size > 0  # `make test` installs the plot extra (matplotlib)


@pytest.mark.parametrize(
    "args,message",
    [
        (["12345"], "error: the puzzle argument: 5 cells, but a 6x6 puzzle has 36"),
        (["11" + "." * 34], "row 1 has 2 1s"),
        (["." * 36], "several solutions"),
        ([], "give the puzzle as an argument or with --file"),
    ],
)
def test_cli_refuses_bad_puzzles(tmp_path, capsys, args, message):
    copy_model().save(tmp_path / "copy.json")
    assert main(["sudoku", "solve", str(tmp_path / "copy.json"), *args]) == 2
    assert message in capsys.readouterr().err
