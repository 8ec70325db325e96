"""Small helpers of the tests that drive the command line: files, the one `error:` line, the
environment of a real process, a watchdog for what could block."""

import contextlib
import faulthandler
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_TOML = "[model]\nd_model = 16\nn_heads = 2\nd_ff = 32\ndepth = 2\nmax_seq_len = 24\n"
CORPUS = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind.\n" * 60


def write(path: Path, content) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def one_error_line(capsys) -> str:
    """The CLI's stderr must be exactly one `error: ...` line; return it."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def cli_env():
    """The environment of a real `python -m scratchlm` process on this checkout's source."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SCRATCHLM_LOG="warning")
    env.pop("PYTHONSTARTUP", None)
    return env


@contextlib.contextmanager
def watchdog(seconds=60):
    """Kill the test process (with a traceback) rather than let a blocking open hang CI."""
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
