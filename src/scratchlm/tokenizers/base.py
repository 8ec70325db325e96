"""The small interface every tokenizer implements, and the checks they share.

Every tokenizer has the same three special tokens at the same ids: `<pad>` = 0 (right-padding of
batches), `<unk>` = 1 (anything outside the vocabulary) and `</s>` = 2 (end of sequence). Keeping
them fixed means batching, the loss mask and generation never need to ask which tokenizer is in use.
This module does not train or serialise anything itself; see word.py, char.py and bpe.py.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar

import numpy as np

from ..checks import check_token_ids, is_int
from ..errors import InputError, TokenizerError

PAD, UNK, EOS = "<pad>", "<unk>", "</s>"
SPECIALS = (PAD, UNK, EOS)
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2

MAX_VOCAB = 50_000  # docs/design.md section 4.1


class Tokenizer(ABC):
    """Text <-> token ids. Subclasses set `kind` (the `"type"` of their JSON form)."""

    kind: ClassVar[str]
    pad_id: int = PAD_ID
    unk_id: int = UNK_ID
    eos_id: int = EOS_ID

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct ids; every id produced by `encode` is below it."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; the literal `</s>` becomes `eos_id`. No length limit here."""

    @abstractmethod
    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of `ids`. Special tokens are dropped unless `skip_special` is False."""

    @abstractmethod
    def to_json(self) -> dict:
        """A JSON-serialisable dict with a `"type"` key that `tokenizer_from_json` rebuilds."""

    def decoder(self) -> "Redecoder":
        """A decoder of ids that arrive one at a time (streamed answers): its `push(id)` returns
        `decode` of every id pushed so far. This one decodes them all again at every push;
        a tokenizer that can extend its text token by token returns a faster one."""
        return Redecoder(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"

    def _check_text(self, text: str) -> str:
        if not isinstance(text, str):
            raise InputError(f"encode expects a str, got {type(text).__name__}")
        return text

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        """The ids as a list of Python ints, or `InputError` naming the first bad one."""
        if isinstance(ids, list) and all(type(i) is int and 0 <= i < self.vocab_size for i in ids):
            return ids  # the common case, checked without NumPy: streaming decodes at every token
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if arr.size == 0:
            return []
        return check_token_ids(arr, self.vocab_size, "ids", ndim=1).tolist()


class Redecoder:
    """`Tokenizer.decoder`'s default: keeps the ids and decodes all of them at every push."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer, self.ids = tokenizer, []

    def push(self, token: int) -> str:
        self.ids.append(token)
        return self.tokenizer.decode(self.ids)


class TokenListTokenizer(Tokenizer):
    """A tokenizer whose vocabulary is a plain list of token strings, id = position in the list
    (word and char). Subclasses say how text splits into tokens (`encode`) and how tokens join
    back into text (`_join`); the list, decoding and the JSON form are shared here."""

    def __init__(self, tokens: list[str]):
        """`tokens`: the whole vocabulary in id order, starting with the three specials."""
        self.tokens = check_token_list({"tokens": tokens}, self.kind)
        self._ids = {t: i for i, t in enumerate(self.tokens)}

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        ids = self._check_ids(ids)
        if skip_special:
            ids = [i for i in ids if i >= len(SPECIALS)]
        return self._join([self.tokens[i] for i in ids])

    @abstractmethod
    def _join(self, tokens: list[str]) -> str:
        """The text of a list of token strings."""

    def to_json(self) -> dict:
        return {"type": self.kind, "tokens": list(self.tokens)}

    @classmethod
    def from_json(cls, d: dict):
        return cls(check_token_list(d, cls.kind))


def check_vocab_limit(vocab_size: int, minimum: int, kind: str) -> None:
    """Reject a requested vocabulary size outside [minimum, MAX_VOCAB]."""
    if not is_int(vocab_size):
        raise TokenizerError(f"{kind} vocab_size must be an integer, got {vocab_size!r}")
    if not minimum <= vocab_size <= MAX_VOCAB:
        raise TokenizerError(
            f"{kind} vocab_size must be between {minimum} and {MAX_VOCAB:,}, got {vocab_size:,}"
        )


def check_token_list(d: dict, kind: str) -> list[str]:
    """The `"tokens"` list of a word/char tokenizer's JSON, checked: specials first, no repeats."""
    tokens = d.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise TokenizerError(f"{kind} tokenizer JSON needs 'tokens': a list of strings")
    if tuple(tokens[:3]) != SPECIALS:
        raise TokenizerError(f"{kind} tokenizer JSON must start with the tokens {list(SPECIALS)}")
    if len(set(tokens)) != len(tokens):
        raise TokenizerError(f"{kind} tokenizer JSON has repeated tokens")
    if len(tokens) > MAX_VOCAB:
        raise TokenizerError(f"{kind} tokenizer has {len(tokens):,} tokens, over {MAX_VOCAB:,}")
    return tokens


def most_frequent(counts: dict[str, int], keep: int) -> list[str]:
    """The `keep` most frequent keys (ties broken alphabetically), returned sorted."""
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    return sorted(ranked[:keep])
