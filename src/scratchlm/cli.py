"""The `scratchlm` command line: global options, sub-command dispatch and error reporting.

Each sub-command lives in `scratchlm/commands/<name>.py` with `register(subparsers)` adding its
parser and setting `func`. User mistakes (any `ScratchLMError`, bad options) print one
`error: ...` line and exit with status 2; `--debug` shows the traceback too. Under mpiexec a
failing rank also ends all the others (parallel.py), which would otherwise wait for it forever.
"""

import argparse
import logging
import sys
import traceback

from . import __version__
from .commands import COMMANDS, sudoku
from .errors import ScratchLMError
from .parallel import error_exit, stop_all


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own mistakes: the same one-line form, exit 2
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


class _UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scratchlm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"scratchlm {__version__}")
    parser.add_argument("--log-level", help="debug, info, warning or error (env SCRATCHLM_LOG)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in [*COMMANDS, sudoku]:
        module.register(sub)
    return parser


def main(argv=None) -> int:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        from .log import setup_logging

        setup_logging(args.log_level, args.log_format)
        return args.func(args) or 0
    except (ScratchLMError, _UsageError) as e:
        if debug:
            traceback.print_exc()
        return error_exit(str(e), 2)
    except KeyboardInterrupt:
        logging.getLogger("scratchlm").warning("interrupted")
        return stop_all(130)
    except Exception:  # a bug: its traceback, exit status 1 (and under mpiexec, the others end)
        traceback.print_exc()
        return stop_all(1)
