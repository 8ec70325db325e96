"""The `scratchlm` command line (placeholder until the training pipeline lands)."""

import sys


def main(argv=None) -> int:
    print("scratchlm: `run` is not yet available", file=sys.stderr)
    return 0
