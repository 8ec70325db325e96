"""The sub-commands of `scratchlm`, one module each; `COMMANDS` lists them in help order."""

from . import eval, info, run, train

COMMANDS = [run, train, eval, info]
