"""`scratchlm eval MODEL DATA`: how well a model answers a chat example set, or a folder of them.

A file: the exact-answer score and mean loss (the loss over every token, and over the answers
alone), the model's greedy answers as they are; then the same questions answered as the chat
answers them (evaluate.chat_answers: corrected words, "I don't know" below --min-confidence).
A folder (one example set a category, such as data/hard): the share answered right in each
category as the chat answers, and how often a question with a known answer got "I don't know".
`--calibrate` chooses the threshold that answers the most questions of DATA right while at most 4%
of the questions with a known answer get "I don't know" (confidence.choose_threshold), and prints
it.
"""

from pathlib import Path

from .generate import add_sampling_options


def register(sub):
    p = sub.add_parser("eval", help="exact-answer score and mean loss of a model on a chat set")
    p.add_argument("model", type=Path)
    p.add_argument("data", type=Path, help="a chat example set, or a folder of them")
    p.add_argument("--show-misses", type=int, default=5, metavar="N", help="print N wrong answers")
    from ..confidence import DEFAULT_MIN_CONFIDENCE

    defaults = {"min_confidence": DEFAULT_MIN_CONFIDENCE}
    add_sampling_options(p, defaults=defaults, only=("min_confidence",))
    p.add_argument("--no-correct", action="store_true", help="read the questions as typed")
    p.add_argument("--calibrate", action="store_true", help="choose min_confidence on DATA")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..model import load_model
    from ..prompts import require_tokenizer
    from ..sampling import Sampling

    model = load_model(args.model)
    require_tokenizer(model, str(args.model))
    threshold = Sampling(min_confidence=args.min_confidence).min_confidence  # checked
    if args.data.is_dir() or args.calibrate:
        return _categories(model, args, threshold)
    return _file(model, args, threshold)


def _file(model, args, threshold) -> int:
    from ..evaluate import chat_answers, exact_answer_score, examples_loss
    from ..examples import load_examples

    examples = load_examples(args.data)
    score, misses = exact_answer_score(model, examples)
    loss, answer_loss = examples_loss(model, examples), examples_loss(model, examples, True)
    for prompt, expected, got in misses[: args.show_misses]:
        print(f"miss: {prompt!r}\n  expected: {expected!r}\n  got:      {got!r}")
    print(
        f"exact_answers={score:.4f} ({len(examples) - len(misses)}/{len(examples)}) "
        f"loss={loss:.4f} answer_loss={answer_loss:.4f}"
    )
    got = chat_answers(model, examples, not args.no_correct, threshold)
    right = sum(a.right for a in got)
    print(f"chat_answers={right / len(got):.4f} ({right}/{len(got)}) {_settings(args, threshold)}")
    return 0


def _categories(model, args, threshold) -> int:
    from ..confidence import choose_threshold
    from ..evaluate import abstention, category_scores, chat_answers, load_categories
    from ..examples import load_examples

    data = load_categories(args.data) if args.data.is_dir() else {"all": load_examples(args.data)}
    if args.calibrate:
        threshold = calibrate(model, data, not args.no_correct, choose_threshold)
        print(f"min_confidence={threshold:.4f} (chosen on {args.data})")
    got = {
        name: chat_answers(model, ex, not args.no_correct, threshold) for name, ex in data.items()
    }
    scores = category_scores(model, got)
    for name, answered in got.items():
        right = sum(a.right for a in answered)
        print(f"category={name} right={scores[name]:.4f} ({right}/{len(answered)})")
    line = f"known_dont_know={scores['known_dont_know']:.4f}"
    if threshold is not None:
        a = abstention(model, [x for answered in got.values() for x in answered], threshold)
        line += f" withheld_precision={a['precision']:.4f} withheld_recall={a['recall']:.4f}"
    print(f"{line} {_settings(args, threshold)}")
    return 0


def calibrate(model, data: dict[str, list[str]], correct: bool, choose) -> float:
    """The threshold `choose` (confidence.choose_threshold) picks on every example of `data`."""
    from ..confidence import DONT_KNOW
    from ..evaluate import as_decoded, chat_answers, same_answer

    got = [a for ex in data.values() for a in chat_answers(model, ex, correct, None)]
    dont_know = as_decoded(model.tokenizer, DONT_KNOW)
    return choose(
        [a.confidence for a in got],
        [a.right for a in got],
        [same_answer(a.expected, dont_know) for a in got],
        [same_answer(a.answer, dont_know) for a in got],
    )


def _settings(args, threshold) -> str:
    shown = "off" if threshold is None else threshold
    return f"(correct={'off' if args.no_correct else 'on'} min_confidence={shown})"
