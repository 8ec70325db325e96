"""Evaluation: the mean loss of batches, and the exact-answer score and loss on chat example sets.

A chat example `User: <q> Assistant: <a> </s>` (or a longer conversation) is split at its LAST
"Assistant:"; the model answers that prompt greedily, and the answer counts when its text equals
the reference's up to spacing and a missing final full stop (both are passed through the same
tokenizer first, so the tokenizer's spacing conventions cannot make a difference).

`chat_answers` answers as the chat does (chat.py): every question of the conversation read through
the input corrector (correct.py), and an answer below `min_confidence` replaced by "I don't know"
(confidence.py). `category_scores` scores held-out sets by category (a folder of example sets, one
file a category, read by `load_categories`): the share right in each (the expected answer, or "I
don't know" where that is the expected one), how often a known question got "I don't know", and
how well the threshold tells wrong answers from right ones (`abstention`).
"""

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import chat_format
from .chat_format import split_answer
from .confidence import DONT_KNOW, answer_logprobs, confidence
from .correct import InputCorrector
from .errors import DataError
from .examples import Batch, load_examples, text_batcher
from .fileio import check_file
from .generate import generate_batch
from .prompts import conversation_ids, fit
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
    what its prompts give one by one, generate.py); a prompt that does not fit the window with room
    for an answer drops its oldest turns (prompts.py)."""
    _, out = _greedy(model, prompts)
    return [model.tokenizer.decode(t).strip() for t in out]


def answers_with_confidence(model, prompts: list[str]) -> list[tuple[str, float]]:
    """`answers`, each with its confidence (confidence.py)."""
    ids, out = _greedy(model, prompts)
    ended = [len(t) < ANSWER_TOKENS for t in out]
    scores = [confidence(lp) for lp in answer_logprobs(model, ids, out, ended)]
    return [(model.tokenizer.decode(t).strip(), c) for t, c in zip(out, scores, strict=True)]


def _greedy(model, prompts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    """-> (the prompts' token ids as the model reads them, the greedy answers' token ids)."""
    tok = model.tokenizer
    ids = [prompt_ids(tok, p, model.config.max_seq_len, ANSWER_TOKENS) for p in prompts]
    greedy = Sampling(max_new_tokens=ANSWER_TOKENS)
    out = []
    for i in range(0, len(ids), ANSWER_BATCH):
        out += generate_batch(model, ids[i : i + ANSWER_BATCH], greedy)
    return ids, out


def prompt_ids(tokenizer, prompt: str, window: int, room: int) -> list[int]:
    """A chat example's prompt (a conversation ending in "Assistant:") as the model reads it: as
    written when it fits the window with `room` for the answer, else re-rendered from its last
    turns (prompts.conversation_ids); a text without turns keeps its last tokens (prompts.fit)."""
    ids = tokenizer.encode(prompt)
    turns = chat_format.turns(prompt)
    if len(fit(ids, window, room)) == len(ids) or not turns:
        return fit(ids, window, room)
    messages = chat_format.messages(turns[:-1], turns[-1][0])
    return conversation_ids(tokenizer, messages, window, room)[0]


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


# ------------------------------------------------------------------------- answering as the chat


class ChatAnswer(NamedTuple):
    """One held-out example answered as the chat answers it."""

    prompt: str  # the conversation as the model read it (corrected questions)
    expected: str  # the reference answer, through the tokenizer and back
    answer: str  # the model's greedy answer
    confidence: float
    given: str  # what the chat shows: the answer, or DONT_KNOW below the threshold

    @property
    def right(self) -> bool:
        return same_answer(self.given, self.expected)


def chat_answers(
    model, examples: list[str], correct: bool = True, min_confidence: float | None = None
) -> list[ChatAnswer]:
    """The last question of each example answered as the chat does (module docstring); the earlier
    turns are the example's own (corrected questions, reference answers)."""
    fix = InputCorrector(model.tokenizer).correct if correct else lambda q: (q, [])
    prompts, expected = [], []
    for example in examples:
        turns = [(fix(q)[0], a) for q, a in chat_format.turns(example)]
        prompts.append(chat_format.prompt(turns[:-1], turns[-1][0]))
        expected.append(as_decoded(model.tokenizer, turns[-1][1]))
    dont_know = as_decoded(model.tokenizer, DONT_KNOW)
    out = []
    for p, e, (a, c) in zip(
        prompts, expected, answers_with_confidence(model, prompts), strict=True
    ):
        given = a if min_confidence is None or c >= min_confidence else dont_know
        out.append(ChatAnswer(p, e, a, c, given))
    return out


def load_categories(folder) -> dict[str, list[str]]:
    """A folder of example sets, one a category (`form.json` -> "form"), in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        check_file(folder)  # a clear error for a missing path
        raise DataError(f"{folder}: expected a folder of example sets, one file a category")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".json", ".jsonl", ".txt"))
    if not files:
        raise DataError(f"{folder}: the folder holds no .json, .jsonl or .txt example sets")
    return {f.stem: load_examples(f) for f in files}


def category_scores(model, categories: dict[str, list[ChatAnswer]]) -> dict[str, float]:
    """Answered categories -> {category: share right}, then `known_dont_know`: the share of
    examples whose expected answer is not "I don't know" that got it."""
    scores = {name: float(np.mean([a.right for a in got])) for name, got in categories.items()}
    dont_know = as_decoded(model.tokenizer, DONT_KNOW)
    known = [
        a for got in categories.values() for a in got if not same_answer(a.expected, dont_know)
    ]
    scores["known_dont_know"] = float(np.mean([same_answer(a.given, dont_know) for a in known]))
    return scores


def abstention(model, answered: list[ChatAnswer], min_confidence: float) -> dict[str, float]:
    """How well `min_confidence` tells the model's wrong answers from its right ones, over the
    answers that are not "I don't know" already: `precision`, the share of withheld answers that
    were wrong; `recall`, the share of wrong answers that were withheld."""
    dont_know = as_decoded(model.tokenizer, DONT_KNOW)
    own = [a for a in answered if not same_answer(a.answer, dont_know)]
    wrong = np.array([not same_answer(a.answer, a.expected) for a in own])
    held = np.array([a.confidence < min_confidence for a in own])
    return {
        "precision": float((wrong & held).sum() / max(held.sum(), 1)),
        "recall": float((wrong & held).sum() / max(wrong.sum(), 1)),
        "withheld": int(held.sum()),
        "wrong": int(wrong.sum()),
    }
