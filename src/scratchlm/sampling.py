"""How the next token is chosen: the `Sampling` settings and the filters that apply them.

`Sampling` is the one description of a decoding strategy, shared by `Model.generate`, the batch and
stream generators, the chat session, the command line and the server; it checks its values when it
is made, so code that receives one can trust it.

- temperature 0: greedy, always the most likely token;
- temperature T > 0: sample from softmax(logits / T), optionally only among the `top_k` most likely
  tokens and/or the smallest set of most likely tokens whose probability reaches `top_p`;
- beam > 1: beam search (generate.py), which is deterministic;
- min_confidence: not a way of choosing tokens but what to do with the finished answer: below
  this confidence it is replaced by "I don't know" (confidence.py; None, the default, never).

Extremes behave as their limits, silently (no NumPy warning for any value `Sampling` accepts): a
temperature so small that logits / T overflows samples the most likely token (greedy), one so large
that all logits / T round to 0 samples uniformly, and a tiny top_p keeps the single most likely
token. The arithmetic is in float64, where 1e-300 is still a number (in float32 it is 0).
Not handled here: repetition penalties, stop strings, constrained decoding.
"""

from dataclasses import dataclass

import numpy as np

from .checks import is_int, is_number
from .errors import InputError
from .layers.activations import log_softmax


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 64  # the longest continuation, in tokens
    temperature: float = 0.0  # 0 = greedy
    top_k: int | None = None  # sample among the k most likely tokens (None: no limit)
    top_p: float | None = None  # ... and within the nucleus of probability p (None: no limit)
    beam: int = 1  # > 1: beam search of this width
    seed: int | None = None  # makes sampling reproducible
    # An answer whose confidence (confidence.py) is below this is replaced by "I don't know";
    # None: always the answer. Applied to a finished answer, after decoding.
    min_confidence: float | None = None

    def __post_init__(self):
        if not is_int(self.max_new_tokens) or self.max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be an integer >= 0, got {self.max_new_tokens!r}")
        t = self.temperature
        if not is_number(t):
            raise InputError(f"temperature must be a number, got {t!r}")
        if not 0 <= t < float("inf"):
            raise InputError(f"temperature must be >= 0 (0 means greedy), got {t}")
        if self.top_k is not None and (not is_int(self.top_k) or self.top_k < 1):
            raise InputError(
                f"top_k must be an integer >= 1 (or None for no limit), got {self.top_k!r}"
            )
        p = self.top_p
        if p is not None and (not is_number(p) or not 0 < p <= 1):
            raise InputError(f"top_p must be a number in (0, 1] (or None), got {p!r}")
        if not is_int(self.beam) or self.beam < 1:
            raise InputError(f"beam must be an integer >= 1, got {self.beam!r}")
        if self.beam > 1 and (t > 0 or self.top_k is not None or p is not None):
            raise InputError(
                "beam search is deterministic: use it without temperature, top_k, top_p"
            )
        if self.seed is not None and (not is_int(self.seed) or self.seed < 0):
            raise InputError(f"seed must be an integer >= 0 (or None), got {self.seed!r}")
        c = self.min_confidence
        if c is not None and (not is_number(c) or not 0 <= c <= 1):
            raise InputError(f"min_confidence must be a number in [0, 1] (or None), got {c!r}")


GREEDY = Sampling()  # the default everywhere: 64 tokens, always the most likely one


def top_k_filter(logits, k):
    """logits (B, V) with every token below the k-th largest set to -inf (ties at it are kept)."""
    if k >= logits.shape[-1]:
        return logits
    kth = np.partition(logits, -k, axis=-1)[:, -k:].min(axis=-1, keepdims=True)  # (B, 1)
    return np.where(logits >= kth, logits, -np.inf)


def top_p_filter(logits, p):
    """logits (B, V) keeping, per row, the smallest set of most likely tokens whose probability
    reaches p (nucleus sampling); the rest become -inf. The most likely token is always kept."""
    probs = np.exp(log_softmax(logits))  # (B, V)
    # Sorted by logit, not probability: the same order, but probabilities that round to equal
    # (a huge temperature) keep their ranking.
    order = np.argsort(-logits, axis=-1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, axis=-1)
    # A token is needed while the more likely tokens before it have not yet reached p.
    before = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # (B, V)
    needed = before < p  # (B, V), in order of probability
    needed[:, 0] = True  # even when p is below what the dtype can tell from 0
    keep = np.empty_like(order, dtype=bool)
    np.put_along_axis(keep, order, needed, axis=-1)
    return np.where(keep, logits, -np.inf)


def next_tokens(logits, sampling: Sampling, rng: np.random.Generator):
    """logits (B, V) -> one token per row (B,): argmax at temperature 0, else a sample."""
    if sampling.temperature == 0:
        return logits.argmax(axis=-1)
    z = logits - logits.max(axis=-1, keepdims=True)  # (B, V), <= 0 with a 0 at the top token
    z = z.astype(np.float64)  # a float32 temperature of 1e-300 would be 0: a division by zero
    with np.errstate(over="ignore", under="ignore"):
        z = z / sampling.temperature  # tiny T: -inf but the top token; huge T: all 0 (uniform)
    if sampling.top_k is not None:
        z = top_k_filter(z, sampling.top_k)
    if sampling.top_p is not None and sampling.top_p < 1:
        z = top_p_filter(z, sampling.top_p)
    cum = np.cumsum(np.exp(log_softmax(z)), axis=-1)  # (B, V)
    u = rng.random((len(cum), 1)) * cum[:, -1:]
    # Inverse CDF: the first token whose cumulative probability exceeds u.
    return np.minimum((cum <= u).sum(axis=-1), cum.shape[-1] - 1)
