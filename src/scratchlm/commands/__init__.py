"""The sub-commands of `scratchlm`, one module each; `COMMANDS` lists them in help order."""

from . import chat, compare, eval, generate, info, run, serve, train

COMMANDS = [run, train, compare, chat, generate, eval, info, serve]
