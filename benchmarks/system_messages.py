"""What a `system` message would do to the answers: the held-out chat set asked with one, under
each way the server could give it to a model that was trained without system turns.

    python benchmarks/system_messages.py [--model out/model.safetensors]

For every system text (the one most clients send by default, and a longer instruction) and every
policy, prints the exact-answer score (evaluate.exact_answer_score: greedy answers equal to the
reference) and the loss on the answers' tokens, over bundled/chat_val.json:

- dropped: the model sees the conversation without it (what the server does);
- prepended: the system text as plain text before the first "User:";
- merged: the system text at the start of the first user message.

One line per (system, policy), e.g.

    system=helpful policy=prepended val_exact=0.8700 val_loss=0.0412 prompt_tokens=+6.0
"""

import argparse
import json
from pathlib import Path

from scratchlm.chat_format import ASSISTANT, USER
from scratchlm.evaluate import exact_answer_score, examples_loss
from scratchlm.model import load_model
from scratchlm.train import BUNDLED_DATA, demo_options, train_examples

SYSTEMS = {
    "helpful": "You are a helpful assistant.",
    "tutor": "You are a friendly science tutor for a class of students. Answer briefly and clearly.",
}


def with_system(example: str, system: str, policy: str) -> str:
    """A chat example `User: q Assistant: a </s>` as the model would see it with `system`."""
    if policy == "dropped":
        return example
    if policy == "prepended":
        return f"{system} {example}"
    assert policy == "merged" and example.startswith(USER), example
    return f"{USER} {system} {example.removeprefix(USER).lstrip()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("out/model.safetensors"))
    args = parser.parse_args()
    if not args.model.exists():
        print(f"{args.model} is missing: training the demo model first (make demo does the same)")
        train_examples(demo_options(args.model))
    model = load_model(args.model)
    tok = model.tokenizer
    examples = json.loads((BUNDLED_DATA / "chat_val.json").read_text())
    assert all(ASSISTANT in e for e in examples)
    print(f"model={args.model} examples={len(examples)}")
    for name, system in SYSTEMS.items():
        for policy in ("dropped", "prepended", "merged"):
            shown = [with_system(e, system, policy) for e in examples]
            exact, _ = exact_answer_score(model, shown)
            loss = examples_loss(model, shown, answers_only=True)
            extra = sum(
                len(tok.encode(s)) - len(tok.encode(e))
                for s, e in zip(shown, examples, strict=True)
            )
            print(
                f"system={name} policy={policy} val_exact={exact:.4f} val_loss={loss:.4f} "
                f"prompt_tokens=+{extra / len(examples):.1f}"
            )


if __name__ == "__main__":
    main()
