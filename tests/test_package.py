"""The package as users install it: a wheel built from the checkout, installed into a fresh virtual
environment outside it, runs `scratchlm run` from another folder (the bundled corpus is package
data, not a file beside the source tree)."""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*cmd, cwd=None, timeout=300):
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.skipif(os.name != "posix", reason="venv layout of POSIX systems")
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    # The wheel is built by the same pip as the tests use; build isolation fetches setuptools.
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("scratchlm-*.whl")
    # A bare environment, filled by this pip (`--python`): seeding one with its own pip would take
    # longer than the install itself.
    venv.create(tmp_path / "env")
    python = tmp_path / "env" / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # One shard thread: the suite's other worker has the other core.
    out = run(
        tmp_path / "env" / "bin" / "scratchlm",
        "run",
        "--epochs",
        "1",
        "--chat-epochs",
        "1",
        "--threads",
        "1",
        "--output",
        "m.safetensors",
        cwd=elsewhere,
    )
    assert "saved the model to m.safetensors" in out
    info = run(tmp_path / "env" / "bin" / "scratchlm", "info", "m.safetensors", cwd=elsewhere)
    assert "sha256:" in info
