"""Argument checks shared by the Python API: numbers that are really numbers, token ids in range,
text that is really Unicode.

Each raises `InputError` with a message naming the argument, so a caller sees which value is wrong.
"""

from numbers import Integral, Real

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
