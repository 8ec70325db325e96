"""The command line: user mistakes give one `error: ...` line and exit status 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, cli_env, write
from mutate import SEED, cases, data_seeds

from scratchlm.cli import main
from scratchlm.errors import ScratchLMError
from scratchlm.examples import load_examples
from scratchlm.model import load_model


def written(path, text) -> str:
    """Write `text` to `path` and return it as a command-line argument."""
    return str(write(path, text))


MISTAKES = {
    "no command": lambda d: [],
    "unknown command": lambda d: ["fly"],
    "bad option value": lambda d: ["train", "--epochs", "many"],
    "unknown option": lambda d: ["run", "--turbo"],
    "missing model file": lambda d: ["info", str(d / "nope.safetensors")],
    "not a model file": lambda d: ["info", written(d / "junk.safetensors", "hello")],
    "unknown model extension": lambda d: ["info", written(d / "m.bin", "x")],
    "missing data file": lambda d: ["train", "--pretrain", str(d / "nope.json")],
    "invalid JSON": lambda d: [
        "train",
        "--pretrain",
        written(d / "bad.json", '["a </s>",\n oops]'),
    ],
    "wrong element type": lambda d: ["train", "--chat", written(d / "t.json", '["ok </s>", 3]')],
    "nothing to train on": lambda d: ["train"],
    "corpus and example sets": lambda d: ["train", "--corpus", "a.txt", "--pretrain", "b.json"],
    "corpus and held-out file": lambda d: ["train", "--corpus", "a.txt", "--val", "b.json"],
    "dropout of 1": lambda d: [
        "train",
        "--pretrain",
        written(d / "p.json", '["a b </s>"]'),
        "--dropout",
        "1",
    ],
    "bad TOML": lambda d: [
        "train",
        "--pretrain",
        "x.json",
        "--config",
        written(d / "c.toml", "[model"),
    ],
    "unknown config field": lambda d: [
        "train",
        "--pretrain",
        written(d / "p.json", '["a b </s>"]'),
        "--config",
        written(d / "c.toml", "[model]\nwidth = 3\n"),
    ],
    "bad log level": lambda d: ["--log-level", "loud", "info", "m.safetensors"],
    "zero epochs": lambda d: [
        "train",
        "--pretrain",
        written(d / "p.json", '["a </s>"]'),
        "--epochs",
        "0",
    ],
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_user_mistakes_exit_2_with_one_error_line(name, tmp_path, capsys):
    argv = MISTAKES[name](tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0]


def test_errors_name_the_file_and_position(tmp_path, capsys):
    bad = written(tmp_path / "bad.json", '["a </s>",\n oops]')
    main(["train", "--pretrain", bad])
    err = capsys.readouterr().err
    assert "bad.json" in err and "line 2" in err


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["--debug", "info", str(tmp_path / "nope.safetensors")]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_real_process_exit_code_and_stderr(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "scratchlm", "info", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "missing.json" in proc.stderr
    assert proc.stdout == ""


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "train", "eval", "info"):
        assert command in out


def test_train_info_eval_round_trip(tmp_path, capsys):
    facts = json.dumps(["The sky is blue . </s>", "Grass is green . </s>"])
    chat = json.dumps(["User: What colour is the sky? Assistant: The sky is blue . </s>"])
    pre, ch = written(tmp_path / "p.json", facts), written(tmp_path / "c.json", chat)
    cfg = written(tmp_path / "c.toml", "[model]\nd_model = 16\nn_heads = 2\nd_ff = 16\ndepth = 1\n")
    out = str(tmp_path / "m.json")
    argv = ["train", "--pretrain", pre, "--chat", ch, "--config", cfg, "--epochs", "2"]
    argv += ["--val", ch, "--dropout", "0.1"]
    assert main([*argv, "--chat-epochs", "2", "--output", out]) == 0
    assert "exact answers on the held-out c.json: " in capsys.readouterr().out
    assert main(["info", out]) == 0
    text = capsys.readouterr().out
    assert "depth: fixed, 1 steps" in text and "sha256: " in text
    assert main(["eval", out, ch]) == 0
    text = capsys.readouterr().out
    assert "exact_answers=" in text and "chat_answers=" in text
    # a folder of example sets: one line per category, and the share of "I don't know"
    folder = tmp_path / "held_out"
    folder.mkdir()
    write(folder / "sky.json", chat)
    write(
        folder / "grass.json",
        json.dumps(["User: What colour is grass? Assistant: Grass is green . </s>"]),
    )
    assert main(["eval", out, str(folder), "--min-confidence", "1"]) == 0  # all withheld
    lines = capsys.readouterr().out.splitlines()
    assert [x.split()[0] for x in lines] == [
        "category=grass",
        "category=sky",
        "known_dont_know=1.0000",
    ]
    assert "withheld_precision=" in lines[-1] and "min_confidence=1.0" in lines[-1]
    assert main(["eval", out, str(folder), "--calibrate"]) == 0
    assert capsys.readouterr().out.startswith("min_confidence=")
    (tmp_path / "empty").mkdir()
    assert main(["eval", out, str(tmp_path / "empty")]) == 2
    assert "holds no .json, .jsonl or .txt example sets" in capsys.readouterr().err


# ------------------------------------------------------------------------------ text that is not Unicode


def test_prompt_that_is_not_unicode_is_one_error(model_file):
    proc = subprocess.run(
        [sys.executable, "-m", "scratchlm", "generate", str(model_file), b"hi \xff there"],
        env=cli_env(),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        "error: the prompt is not valid Unicode: a lone surrogate (\\udcff) at character 3"
    ]


# ------------------------------------------------------------------------------ fuzzing: a sample of the damaged files is one error line, also in a real process


def failing_samples(seeds, n: int, load, folder: Path) -> list[Path]:
    """The first `n` mutants of `seeds` that `load` refuses, as files in `folder`."""
    out = []
    for k, name, data in cases(seeds, 10 * n, SEED + 1):
        path = folder / f"{k}{Path(name).suffix}"
        path.write_bytes(data)
        try:
            load(path)
        except ScratchLMError:
            out.append(path)
        if len(out) == n:
            break
    return out


def test_fuzz_cli_prints_one_error_line(tmp_path, capsys, model_seeds):
    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    runs = [
        ["train", "--pretrain", str(path), "--output", str(tmp_path / "never.json")]
        for path in failing_samples(data_seeds(), 30, load_examples, tmp_path / "data")
    ]
    commands = [["info"], ["generate", "hi"], ["chat"]]
    for i, path in enumerate(failing_samples(model_seeds, 30, load_model, tmp_path / "models")):
        command = commands[i % len(commands)]
        runs.append([command[0], str(path), *command[1:]])
    assert len(runs) == 60
    for argv in runs:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), (argv, err)
    # and a few as real processes: what a user's terminal shows
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("PYTHONSTARTUP", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "scratchlm", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in runs[::15]
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
