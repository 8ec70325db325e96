"""The sub-commands of `scratchlm`, one module each; `COMMANDS` lists them in help order."""

COMMANDS = []
