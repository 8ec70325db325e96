"""`scratchlm eval MODEL DATA`: exact-answer score and mean loss on a chat example set (the loss
over every token, and over the answers alone)."""

from pathlib import Path


def register(sub):
    p = sub.add_parser("eval", help="exact-answer score and mean loss of a model on a chat set")
    p.add_argument("model", type=Path)
    p.add_argument("data", type=Path)
    p.add_argument("--show-misses", type=int, default=5, metavar="N", help="print N wrong answers")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..errors import InputError
    from ..evaluate import exact_answer_score, examples_loss
    from ..examples import load_examples
    from ..model import load_model

    model = load_model(args.model)
    if model.tokenizer is None:
        raise InputError(f"{args.model}: the model has no tokenizer, so it cannot read text")
    examples = load_examples(args.data)
    score, misses = exact_answer_score(model, examples)
    loss, answer_loss = examples_loss(model, examples), examples_loss(model, examples, True)
    for prompt, expected, got in misses[: args.show_misses]:
        print(f"miss: {prompt!r}\n  expected: {expected!r}\n  got:      {got!r}")
    print(
        f"exact_answers={score:.4f} ({len(examples) - len(misses)}/{len(examples)}) "
        f"loss={loss:.4f} answer_loss={answer_loss:.4f}"
    )
    return 0
