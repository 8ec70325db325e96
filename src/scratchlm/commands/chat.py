"""`scratchlm chat MODEL`: talk with a model in the terminal (see chat.py for the session)."""

import argparse
from pathlib import Path

from .generate import add_sampling_options, sampling_from_args


def register(sub):
    p = sub.add_parser("chat", help="chat with a model in the terminal")
    p.add_argument("model", type=Path, help="model file (.safetensors or .json)")
    add_sampling_options(p)
    p.add_argument(
        "--history",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show the model the earlier turns (default; see /history)",
    )
    p.set_defaults(func=main)


def main(args) -> int:
    from ..chat import ChatSession, chat_loop
    from ..model import load_model

    sampling = sampling_from_args(args)
    model = load_model(args.model)
    session = ChatSession(model, sampling, history=args.history)
    return chat_loop(model, session, name=str(args.model))
