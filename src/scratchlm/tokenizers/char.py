"""The character tokenizer: one token per Unicode character, for text corpora like Shakespeare.

The vocabulary is the three specials followed by the sorted characters seen in training. The
literal `</s>` is the end-of-sequence token (so example sets keep their boundaries); every other
character is one token, and characters never seen in training become `<unk>`. So a text without
`</s>` gives exactly len(text) tokens. It does not normalise Unicode: "é" and "e" + combining
accent are different sequences.
"""

from collections import Counter
from collections.abc import Iterable

from ..errors import TokenizerError
from .base import (
    EOS,
    EOS_ID,
    MAX_VOCAB,
    SPECIALS,
    UNK_ID,
    TokenListTokenizer,
    check_vocab_limit,
    most_frequent,
)


class CharTokenizer(TokenListTokenizer):
    kind = "char"

    def __init__(self, tokens: list[str]):
        """`tokens`: the three specials, then single characters, in id order."""
        super().__init__(tokens)
        if any(len(t) != 1 for t in self.tokens[len(SPECIALS) :]):
            raise TokenizerError("char tokenizer tokens after the specials must be characters")

    @classmethod
    def build(cls, texts: Iterable[str], vocab_size: int = MAX_VOCAB) -> "CharTokenizer":
        """Characters of `texts`, keeping the `vocab_size - 3` most frequent if there are more."""
        check_vocab_limit(vocab_size, len(SPECIALS) + 1, cls.kind)
        counts = Counter()
        for text in texts:
            for part in text.split(EOS):
                counts.update(part)
        if not counts:
            raise TokenizerError("cannot build a char tokenizer: the texts are empty")
        return cls(list(SPECIALS) + most_frequent(counts, vocab_size - len(SPECIALS)))

    def encode(self, text: str) -> list[int]:
        get = self._ids.get
        ids: list[int] = []
        for k, part in enumerate(self._check_text(text).split(EOS)):
            if k:
                ids.append(EOS_ID)
            ids.extend([get(c, UNK_ID) for c in part])
        return ids

    def _join(self, tokens: list[str]) -> str:
        return "".join(tokens)
