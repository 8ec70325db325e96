"""Tokenizers: `word` (the seed's default), `caseless` (word, blind to case), `char` and byte-level
`bpe`, behind one interface.

`build_tokenizer` trains one from texts; `tokenizer_from_json` rebuilds one from the dict that its
`to_json` gave (the form stored in model files). All of them share the special ids `<pad>` = 0,
`<unk>` = 1 and `</s>` = 2.
"""

from collections.abc import Iterable

from ..errors import TokenizerError
from .base import EOS_ID, MAX_VOCAB, PAD_ID, UNK_ID, Tokenizer
from .bpe import BPETokenizer
from .caseless import CaselessWordTokenizer
from .char import CharTokenizer
from .word import WordTokenizer

TOKENIZERS: dict[str, type[Tokenizer]] = {
    cls.kind: cls for cls in (WordTokenizer, CaselessWordTokenizer, CharTokenizer, BPETokenizer)
}

DEFAULT_BPE_VOCAB = 4096


def build_tokenizer(kind: str, texts: Iterable[str], vocab_size: int | None = None) -> Tokenizer:
    """Build a `kind` ("word", "caseless", "char" or "bpe") tokenizer from `texts`.

    `vocab_size` caps word, caseless and char vocabularies (default 50,000, the limit) and is the target size
    of a BPE vocabulary (default 4,096).
    """
    if kind not in TOKENIZERS:
        raise TokenizerError(f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZERS)}")
    if vocab_size is None:
        vocab_size = DEFAULT_BPE_VOCAB if kind == "bpe" else MAX_VOCAB
    return TOKENIZERS[kind].build(texts, vocab_size)


def tokenizer_from_json(d: dict) -> Tokenizer:
    """Rebuild a tokenizer from `Tokenizer.to_json()`; `TokenizerError` if the dict is malformed."""
    if not isinstance(d, dict):
        raise TokenizerError(f"tokenizer JSON must be an object, got {type(d).__name__}")
    kind = d.get("type")
    if not isinstance(kind, str) or kind not in TOKENIZERS:
        raise TokenizerError(f"tokenizer JSON has unknown type {kind!r}")
    return TOKENIZERS[kind].from_json(d)


__all__ = [
    "EOS_ID",
    "MAX_VOCAB",
    "PAD_ID",
    "UNK_ID",
    "BPETokenizer",
    "CaselessWordTokenizer",
    "CharTokenizer",
    "Tokenizer",
    "WordTokenizer",
    "build_tokenizer",
    "tokenizer_from_json",
]
