"""The sub-commands of `scratchlm`, one module each; `COMMANDS` lists them in help order."""

from . import chat, eval, generate, info, run, serve, train

COMMANDS = [run, train, chat, generate, eval, info, serve]
