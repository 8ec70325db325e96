"""`scratchlm run`: the seed's whole job on the bundled corpus (what `make demo` runs)."""

from dataclasses import replace
from pathlib import Path

from .train import add_threads_option


def register(sub):
    p = sub.add_parser(
        "run", help="pre-train and instruction-tune on the bundled corpus, then chat"
    )
    p.add_argument(
        "-i", "--interactive", action="store_true", help="chat with the model afterwards"
    )
    p.add_argument("--output", type=Path, default=Path("out/model.safetensors"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="pre-training epochs (default: the demo's)")
    p.add_argument(
        "--chat-epochs", type=int, help="instruction-tuning epochs (default: the demo's)"
    )
    add_threads_option(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from ..train import demo_options, train_examples

    opts = demo_options(args.output, args.seed)
    for phase, epochs in zip(opts.phases, (args.epochs, args.chat_epochs), strict=True):
        if epochs is not None:
            phase.train = replace(phase.train, epochs=epochs)
    opts.threads = args.threads
    model = train_examples(opts)
    if args.interactive:
        from ..chat import chat_loop

        chat_loop(model)
    return 0
