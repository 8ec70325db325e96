"""Evaluation: the mean loss of batches, and the exact-answer score and loss on chat example sets.

A chat example `User: <q> Assistant: <a> </s>` (or a longer conversation) is split at its LAST
"Assistant:"; the model answers that prompt greedily, and the answer counts when its text equals
the reference's up to spacing and a missing final full stop (both are passed through the same
tokenizer first, so the tokenizer's spacing conventions cannot make a difference).
"""

from collections.abc import Iterable

from .chat_format import split_answer
from .examples import Batch, text_batcher
from .generate import generate_batch
from .sampling import Sampling

ANSWER_TOKENS = 40  # the longest answer generated (the bundled ones have at most 28 tokens)
ANSWER_BATCH = 64  # prompts decoded together: one forward pass per new token for all of them


def mean_loss(model, batches: Iterable[Batch]) -> float:
    """Token-weighted mean loss over `batches` (no gradients)."""
    total = count = 0.0
    for b in batches:
        n = float(b.mask.sum())
        total += model.loss(b.inputs, b.targets, b.mask) * n
        count += n
    return total / count


def answer(model, prompt: str) -> str:
    """The model's greedy answer to `prompt` (a text ending in "Assistant:")."""
    return answers(model, [prompt])[0]


def answers(model, prompts: list[str]) -> list[str]:
    """The model's greedy answers to `prompts`, decoded ANSWER_BATCH at a time (a batch gives
    what its prompts give one by one, generate.py); a prompt keeps its last max_seq_len - 1 tokens."""
    tok, keep = model.tokenizer, model.config.max_seq_len - 1
    ids = [tok.encode(p)[-keep:] for p in prompts]
    greedy = Sampling(max_new_tokens=ANSWER_TOKENS)
    out = []
    for i in range(0, len(ids), ANSWER_BATCH):
        out += generate_batch(model, ids[i : i + ANSWER_BATCH], greedy)
    return [tok.decode(t).strip() for t in out]


def as_decoded(tokenizer, reference: str) -> str:
    """The reference as the model would write it: through the tokenizer and back."""
    return tokenizer.decode(tokenizer.encode(reference)).strip()


def same_answer(got: str, expected: str) -> bool:
    """Equal up to spacing and a missing final full stop."""
    norm = lambda s: " ".join(s.split()).removesuffix(".").rstrip()  # noqa: E731
    return norm(got) == norm(expected)


def exact_answer_score(model, examples: list[str]) -> tuple[float, list[tuple[str, str, str]]]:
    """-> (fraction answered exactly, the misses as (prompt, expected, got))."""
    misses = []
    prompts, references = zip(*map(split_answer, examples), strict=True)
    for prompt, reference, got in zip(
        prompts, references, answers(model, list(prompts)), strict=True
    ):
        expected = as_decoded(model.tokenizer, reference)
        if not same_answer(got, expected):
            misses.append((prompt, expected, got))
    return (len(examples) - len(misses)) / len(examples), misses


def examples_loss(model, examples: list[str], answers_only: bool = False) -> float:
    """The mean loss over every token of the examples, or over the assistant's words only
    (examples.assistant_tokens), as chat training counts it with --assistant-only."""
    batcher = text_batcher(
        model.tokenizer, examples, 32, model.config.max_seq_len, answers_only=answers_only
    )
    return mean_loss(model, batcher.batches(0))
