"""Argument checks shared by the Python API: numbers that are really numbers, token ids in range,
text that is really Unicode, and the fields of the config records (`check_fields`: ModelConfig,
TrainConfig, Sampling each state their rules next to their fields, and one function checks them).

Each raises an error with a message naming the argument, so a caller sees which value is wrong.
"""

import math
from collections.abc import Collection
from dataclasses import MISSING, dataclass, field, fields
from numbers import Integral, Real
from types import UnionType
from typing import get_args

import numpy as np

from .errors import InputError


def is_int(x) -> bool:
    """True for Python and NumPy integers, False for bools (which Python counts as integers)."""
    return isinstance(x, Integral) and not isinstance(x, bool)


def is_number(x) -> bool:
    """True for integers and floats (Python or NumPy), False for bools."""
    return isinstance(x, Real) and not isinstance(x, bool)


def check_token_ids(ids, vocab_size: int, what: str, ndim: int) -> np.ndarray:
    """`ids` as an integer array of `ndim` dimensions, none of them empty, every id below
    `vocab_size`; else an InputError that names `what` and the first bad position."""
    ids = np.asarray(ids)
    if ids.ndim != ndim:
        shape = "flat sequence" if ndim == 1 else f"{ndim}-D array"
        raise InputError(f"{what} must be a {shape} of token ids, got shape {ids.shape}")
    if ids.size == 0:
        raise InputError(f"{what} is empty: give at least one token id")
    if not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"{what} must hold integer token ids, got dtype {ids.dtype}")
    bad = (ids < 0) | (ids >= vocab_size)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        index = ", ".join(map(str, where))
        raise InputError(
            f"{what}[{index}] = {ids[where]} is not a token id "
            f"(out of range for vocab_size {vocab_size})"
        )
    return ids


def lone_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate in `text` (a half of a UTF-16 pair, U+D800..U+DFFF, which
    JSON escapes like "\\ud800" and undecodable command-line bytes put into a Python str), or
    None if `text` is valid Unicode, i.e. can be written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def check_text(text: str, what: str) -> str:
    """`text` if it is valid Unicode, else an InputError naming `what` and the position."""
    i = lone_surrogate(text)
    if i is not None:
        raise InputError(
            f"{what} is not valid Unicode: a lone surrogate (\\u{ord(text[i]):04x}) at "
            f"character {i}"
        )
    return text


# ------------------------------------------------------------------ fields of config records


@dataclass(frozen=True)
class Rule:
    """What a field of a config record may hold, besides its annotated type (int, float, bool,
    str; `| None` allows None): a range for numbers, the names allowed for a string."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False
    choices: Collection[str] = ()
    note: str = ""  # said after the rule in the message: "0 means greedy"

    def describe(self, kind: type) -> str:
        if self.choices:
            return "one of " + ", ".join(map(repr, self.choices))
        if kind is bool:
            return "true or false"
        noun = "an integer" if kind is int else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_num(self.low)}"
        return f"a finite {noun[2:]}" if kind is float else noun

    def allows(self, value, kind: type) -> bool:
        if kind is bool:
            return isinstance(value, bool)
        if kind is str:
            return isinstance(value, str) and (not self.choices or value in self.choices)
        if not (is_int(value) if kind is int else is_number(value)) or not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def checked(default=MISSING, **rule):
    """A dataclass field with a `Rule` (see `check_fields`)."""
    return field(default=default, metadata={"rule": Rule(**rule)})


def check_fields(record, what: str, error: type) -> None:
    """Raise `error` for the first field of the dataclass `record` that does not hold what its
    annotation and `Rule` allow: "<what> must be <rule>, got <value>". `what` is a format string
    for the field's name, e.g. "config field {!r}"."""
    for f in fields(record):
        value, kind = getattr(record, f.name), f.type
        optional = isinstance(kind, UnionType) and type(None) in get_args(kind)
        if optional:
            if value is None:
                continue
            kind = next(k for k in get_args(kind) if k is not type(None))
        rule = f.metadata.get("rule", Rule())
        if not rule.allows(value, kind):
            said = rule.describe(kind)
            if kind is float and is_number(value) and math.isfinite(value) is False:
                said = "a finite number"
            note = f" ({rule.note})" if rule.note else ""
            none = " (or None)" if optional else ""
            raise error(f"{what.format(f.name)} must be {said}{note}{none}, got {value!r}")
