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

from dataclasses import Field, dataclass, field, fields
from typing import get_args

import numpy as np

from .checks import Rule, check_fields
from .errors import InputError
from .layers.activations import log_softmax


def setting(default, help: str, name: str = "", metavar: str = "", chat: bool = True, **rule):
    """A field of `Sampling`: its default, a line of help, the name users type (default: the
    field's), the placeholder of its value, whether the chat has a /command for it, its Rule."""
    meta = {"help": help, "name": name, "metavar": metavar, "chat": chat, "rule": Rule(**rule)}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Sampling:
    """How tokens are chosen, and what becomes of the answer (module docstring). Each field is a
    `setting` with its user-facing name, help and rule: the command line's options, the chat's
    /commands and the server's request fields are all made from them (`settings`)."""

    max_new_tokens: int = setting(64, "the longest answer, in tokens", name="max_tokens", low=0)
    temperature: float = setting(
        0.0,
        "0 = greedy, always the most likely token; higher = more varied",
        metavar="T",
        low=0,
        note="0 means greedy",
    )
    top_k: int | None = setting(
        None, "sample only among the K most likely tokens", metavar="K", low=1
    )
    top_p: float | None = setting(
        None,
        "sample among the most likely tokens that together reach probability P",
        metavar="P",
        low=0,
        low_open=True,
        high=1,
    )
    beam: int = setting(1, "beam search with this width", metavar="N", chat=False, low=1)
    seed: int | None = setting(None, "makes sampling reproducible", chat=False, low=0)
    # Not a way of choosing tokens: applied to the finished answer, after decoding.
    min_confidence: float | None = setting(
        None,
        '"I don\'t know" instead of an answer the model is less sure of (confidence.py)',
        metavar="P",
        low=0,
        high=1,
    )

    def __post_init__(self):
        check_fields(self, "{}", InputError)
        if self.beam > 1 and (
            self.temperature > 0 or self.top_k is not None or self.top_p is not None
        ):
            raise InputError(
                "beam search is deterministic: use it without temperature, top_k, top_p"
            )


def settings() -> list[Field]:
    """Sampling's fields, each with its `metadata`: help, metavar, chat (whether the chat has a
    /command for it) and rule; `setting_name` is the name users type."""
    return list(fields(Sampling))


def setting_name(f: Field) -> str:
    return f.metadata["name"] or f.name


def setting_type(f: Field) -> type:
    """int or float: the type of a setting's values (None aside)."""
    return next(t for t in (get_args(f.type) or (f.type,)) if t is not type(None))


def parse_setting(f: Field, text: str):
    """A setting's value as typed (command line, chat): a number, or off (None) where allowed."""
    optional = f.default is None
    if optional and text.lower() in ("off", "none"):
        return None
    kind = setting_type(f)
    try:
        return kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        off = " or off" if optional else ""
        raise InputError(f"{setting_name(f)} takes {noun}{off}, got {text!r}") from None


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
