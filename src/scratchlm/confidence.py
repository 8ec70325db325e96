"""How sure a model is of an answer, and "I don't know" instead of an answer it is not sure of.

A small model asked about something it never learned still writes a fluent answer, usually a fact
about something else. Its own probabilities tell such answers apart: a question it knows gets an
answer whose every token was very likely, a question it does not know gets a string of guesses.
The confidence of an answer is the geometric mean of the probabilities of its tokens, the
end-of-sequence token that closes it included (an answer cut at max_new_tokens has none):

    confidence = exp(mean(log p(token_i | prompt, tokens before i)))    in (0, 1]

computed from the model's raw logits (temperature, top-k and top-p do not change it), so the same
answer has the same confidence however it was drawn. Below `min_confidence` the answer is replaced
by `DONT_KNOW`. The threshold is a `Sampling` setting (`min_confidence`, None: off), chosen on
held-out data that is not the test set (`choose_threshold`; `scratchlm eval MODEL data/calibration
--calibrate`); `DEFAULT_MIN_CONFIDENCE`, the demo's value, is the default of `scratchlm chat`.

The log-probabilities come either from the decoding loop, which has each step's logits anyway
(`token_logprobs`, what a server calls at every step), or from one forward pass over the prompt
and the finished answer (`answer_logprobs`): both give the same numbers.
Not handled: calibrating per question type, or abstaining part-way through an answer.
"""

import math
from collections.abc import Sequence

import numpy as np

from .generate import resolve_eos
from .layers.activations import log_softmax

# The bundled chat set's reply to everything outside its facts: a model trained on it says these
# very words itself, so an answer replaced by them reads the same as one the model chose.
DONT_KNOW = (
    "I'm sorry, I don't know about that. "
    "I only know some facts about science, nature, history and the world."
)
# choose_threshold on data/calibration, over the answers of the demo's models of seeds 0, 1 and 2
# together (the `pooled` line of benchmarks/chat_quality.py)
DEFAULT_MIN_CONFIDENCE = 0.925
SCORE_BATCH = 32  # answers scored together by `answer_logprobs`


def token_logprobs(logits, tokens) -> np.ndarray:
    """Raw next-token logits (B, V) and the tokens drawn from them (B,) -> their log-probabilities
    (B,), float64. A decoding loop calls this at every step, the end-of-sequence token included."""
    logits = np.asarray(logits, dtype=np.float64)  # (B, V)
    rows = np.arange(len(logits))
    return log_softmax(logits)[rows, np.asarray(tokens)]  # (B,)


def confidence(logprobs: Sequence[float]) -> float:
    """The geometric-mean probability of an answer's tokens; 1.0 for no tokens at all."""
    return math.exp(float(np.mean(logprobs))) if len(logprobs) else 1.0


def is_confident(logprobs: Sequence[float], min_confidence: float | None) -> bool:
    """Whether an answer with these token log-probabilities is given (True when there is no
    threshold) or replaced by `DONT_KNOW`."""
    return min_confidence is None or confidence(logprobs) >= min_confidence


def answer_logprobs(model, prompts, answers, ended=None, eos_id=None) -> list[np.ndarray]:
    """The log-probability of every token of each answer given its prompt (lists of token ids),
    and of the end-of-sequence token after it where the answer `ended` there (default: all did;
    an answer cut at max_new_tokens did not, and a decoding loop never drew its end), SCORE_BATCH
    answers per forward pass. A sequence longer than the context keeps its last max_seq_len
    tokens (the oldest ones of the prompt are the ones the model no longer sees); an answer token
    with no token before it in the window is not scored."""
    eos = resolve_eos(model, eos_id)
    ended = [True] * len(answers) if ended is None else ended
    window = model.config.max_seq_len
    rows = []  # (inputs, targets, how many targets at the end are the answer's)
    for prompt, answer, end in zip(prompts, answers, ended, strict=True):
        closed = end and eos >= 0
        seq = [*prompt, *answer, eos] if closed else [*prompt, *answer]
        inputs, targets = seq[:-1][-window:], seq[1:][-window:]
        rows.append((inputs, targets, min(len(answer) + closed, len(targets))))
    out = []
    for i in range(0, len(rows), SCORE_BATCH):
        out += _score(model, rows[i : i + SCORE_BATCH])
    return out


def _score(model, rows) -> list[np.ndarray]:
    T = max(len(inputs) for inputs, _, _ in rows)
    ids = np.zeros((len(rows), T), dtype=np.intp)  # (B, T), right-padded: causality ignores it
    for r, (inputs, _, _) in enumerate(rows):
        ids[r, : len(inputs)] = inputs
    logits = model.logits(ids)  # (B, T, V)
    # only the answers' positions: (N, V) for the N scored tokens of the batch
    row = np.concatenate([np.full(n, r) for r, (_, _, n) in enumerate(rows)])
    pos = np.concatenate([np.arange(len(inputs) - n, len(inputs)) for inputs, _, n in rows])
    target = np.concatenate([np.asarray(t[len(t) - n :], dtype=np.intp) for _, t, n in rows])
    logp = token_logprobs(logits[row, pos], target)  # (N,)
    return np.split(logp, np.cumsum([n for _, _, n in rows])[:-1])


def choose_threshold(
    confidences, right, expected_dont_know, said_dont_know, max_known_dont_know=0.04
) -> float:
    """The `min_confidence` that makes the most answers of calibration data right while at most
    `max_known_dont_know` of the questions with a known answer get "I don't know" (the model's own
    "I don't know"s included: a small model that says it too often is no use either).

    Per example: the confidence of the model's answer, whether that answer is `right`, whether
    "I don't know" is the expected answer, and whether the model `said_dont_know` itself (then
    there is nothing to withhold). An answer of confidence c is given when c >= the threshold and
    replaced by "I don't know" otherwise. Ties go to the lowest threshold (the fewest answers
    withheld); the threshold lies halfway between the confidences it separates."""
    said = np.asarray(said_dont_know, dtype=bool)
    c = np.where(said, np.inf, np.asarray(confidences, dtype=np.float64))
    order = np.argsort(c, kind="stable")
    c, said = c[order], said[order]
    given = np.asarray(right, dtype=np.int64)[order]
    withheld = np.asarray(expected_dont_know, dtype=np.int64)[order]
    known = 1 - withheld
    zero = np.zeros(1, dtype=np.int64)
    # withholding the k least confident answers, k = 0 .. n
    right_k = np.concatenate([zero, np.cumsum(withheld)]) + np.concatenate(
        [np.cumsum(given[::-1])[::-1], zero]
    )
    known_dont_know = (known * said).sum() + np.concatenate([zero, np.cumsum(known * ~said)])
    allowed = known_dont_know <= max_known_dont_know * known.sum()
    allowed[1:] &= np.isfinite(c)  # an answer that is "I don't know" already is never withheld
    if not allowed.any():
        return 0.0
    k = int(np.argmax(np.where(allowed, right_k, -1)))  # the first maximum: the fewest withheld
    if k == 0:
        return 0.0
    upper = min(c[k], 1.0) if k < len(c) else 1.0
    return float((c[k - 1] + upper) / 2)
