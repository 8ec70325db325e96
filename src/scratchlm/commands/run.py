"""`scratchlm run`: the seed's whole job on the bundled corpus (what `make demo` runs).

After training it scores the chat as `scratchlm chat` answers (corrected words, "I don't know"
below the calibrated confidence) on each category of the harder held-out set (data/hard), and how
often a question with a known answer got "I don't know".
"""

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
    from ..parallel import get_world
    from ..train import demo_options, train_examples

    opts = demo_options(args.output, args.seed)
    for phase, epochs in zip(opts.phases, (args.epochs, args.chat_epochs), strict=True):
        if epochs is not None:
            phase.train = replace(phase.train, epochs=epochs)
    opts.threads = args.threads
    model = train_examples(opts)
    if get_world().is_root:
        print(chat_summary(model, opts.val))
    if args.interactive:
        from ..chat import chat_loop

        chat_loop(model)
    return 0


def chat_summary(model, val: Path) -> str:
    """The chat's share right in each category of the harder held-out set next to `val`, and how
    often a question with a known answer got "I don't know"."""
    from ..confidence import DEFAULT_MIN_CONFIDENCE as THRESHOLD
    from ..evaluate import category_scores, chat_answers, load_categories

    hard = val.parent / "hard"
    got = {k: chat_answers(model, v, True, THRESHOLD) for k, v in load_categories(hard).items()}
    scores = " ".join(f"{k}={v:.1%}" for k, v in category_scores(model, got).items())
    return (
        f"chat (corrected words, min_confidence {THRESHOLD}) on the held-out {hard.name}/: {scores}"
    )
