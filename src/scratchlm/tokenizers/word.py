"""The word tokenizer of the seed (docs/design.md section 4.1), the default for the bundled corpus.

Splitting: whitespace separates words; inside a word every ASCII punctuation character is a token
of its own and the runs between them are tokens; case is kept; the literal `</s>` is the
end-of-sequence token wherever it appears. So "How do mountains form?" is How / do / mountains /
form / ?. Words outside the vocabulary become `<unk>`.

Decoding cannot know where the original had spaces, so it follows how English is written:
closing punctuation attaches to the word before it, opening brackets to the word after, hyphens and
slashes to both, contractions ("it's", "don't") and numbers ("3.14", "1,000", "10:30") and
abbreviations ("U.S.") are rejoined, and double quotes alternate between opening and closing.
Rare cases it gets wrong: possessive plurals ("students' books") and names like "O'Brien".
"""

import re
import string
from collections import Counter
from collections.abc import Iterable

from ..errors import TokenizerError
from .base import (
    MAX_VOCAB,
    SPECIALS,
    UNK_ID,
    TokenListTokenizer,
    check_vocab_limit,
    most_frequent,
)

_PUNCT = re.escape(string.punctuation)
# `</s>` comes first so that it wins over splitting "<", "/", "s", ">".
_TOKEN_RE = re.compile(rf"</s>|[{_PUNCT}]|[^\s{_PUNCT}]+")

_CLOSERS = frozenset(".,!?;:%)]}")
_OPENERS = frozenset("([{$#")
_JOINERS = frozenset("-/_@")
_CONTRACTION_TAILS = frozenset({"s", "t", "re", "ve", "ll", "d", "m"})


def split_words(text: str) -> list[str]:
    """The word-level tokens of `text` as strings (before mapping them to ids)."""
    return _TOKEN_RE.findall(text)


class WordTokenizer(TokenListTokenizer):
    kind = "word"

    @classmethod
    def build(cls, texts: Iterable[str], vocab_size: int = MAX_VOCAB) -> "WordTokenizer":
        """Vocabulary of `texts`, keeping the `vocab_size - 3` most frequent words if over."""
        check_vocab_limit(vocab_size, len(SPECIALS) + 1, cls.kind)
        counts = Counter()
        for text in texts:
            counts.update(split_words(text))
        for special in SPECIALS:
            counts.pop(special, None)
        if not counts:
            raise TokenizerError("cannot build a word tokenizer: the texts contain no words")
        return cls(list(SPECIALS) + most_frequent(counts, vocab_size - len(SPECIALS)))

    def encode(self, text: str) -> list[int]:
        ids = self._ids
        return [ids.get(t, UNK_ID) for t in split_words(self._check_text(text))]

    def _join(self, tokens: list[str]) -> str:
        return detokenize(tokens)

    def decoder(self) -> "WordDecoder":
        return WordDecoder(self)


def detokenize(tokens: list[str]) -> str:
    """Join word tokens with spaces, attaching punctuation the way English is written."""
    joiner = Joiner()
    for tok in tokens:
        joiner.add(tok)
    return joiner.text()


class Joiner:
    """`detokenize`, one token at a time: `add` tokens, `text()` is the text of all of them.

    Whether a token is spaced from its neighbours depends on the token after it, so a token is
    placed when the next one arrives; `text()` places the newest one as the last (on a copy of
    the open quotes, since placing a quote opens or closes it). Streaming an answer (`decoder`)
    thus costs one placement per token instead of joining the whole answer again.
    """

    def __init__(self):
        self.parts: list[str] = []  # the placed tokens and the spaces between them
        self.glue_next = False  # the last placed token asked to be followed without a space
        self.open_quotes: set[str] = set()
        self.prev = ""  # the last placed token
        self.last: str | None = None  # the newest token, not placed yet

    def add(self, tok: str) -> None:
        if self.last is not None:
            self.glue_next = self._place(self.last, tok, self.open_quotes, self.parts)
            self.prev = self.last
        self.last = tok

    def text(self) -> str:
        if self.last is None:
            return "".join(self.parts)
        parts = self.parts.copy()
        self._place(self.last, "", set(self.open_quotes), parts)
        return "".join(parts)

    def _place(self, tok: str, nxt: str, open_quotes: set[str], parts: list[str]) -> bool:
        """Append `tok` (and the space before it, if any) to `parts` -> whether it glues to the
        token after it."""
        glue_before, glue_after = _attachment(self.prev, tok, nxt, open_quotes)
        if parts and not (self.glue_next or glue_before):
            parts.append(" ")
        parts.append(tok)
        return glue_after


class WordDecoder:
    """`WordTokenizer.decoder`: ids pushed one at a time, the text of all of them as `decode`
    gives it, at the cost of one token per push."""

    def __init__(self, tokenizer: "WordTokenizer"):
        self.tokenizer, self.joiner = tokenizer, Joiner()

    def push(self, token: int) -> str:
        (token,) = self.tokenizer._check_ids([token])
        if token >= len(SPECIALS):  # decode drops the specials
            self.joiner.add(self.tokenizer.tokens[token])
        return self.joiner.text()


def _attachment(prev: str, tok: str, nxt: str, open_quotes: set[str]) -> tuple[bool, bool]:
    """Whether `tok` attaches to the token before it and to the one after it."""
    if tok in _CLOSERS:
        return True, _inside_number_or_abbreviation(prev, tok, nxt)
    if tok in _OPENERS:
        return False, True
    if tok in _JOINERS:
        return True, True
    if tok == "'" and prev[-1:].isalnum() and nxt.lower() in _CONTRACTION_TAILS:
        return True, True
    if tok in ("'", '"', "`"):
        # Quotes alternate: the first one opens (hugs the next word), the second closes.
        if tok in open_quotes:
            open_quotes.discard(tok)
            return True, False
        open_quotes.add(tok)
        return False, True
    return False, False


def _inside_number_or_abbreviation(prev: str, tok: str, nxt: str) -> bool:
    """True for the "." of "3.14" or "U.S.", the "," of "1,000" and the ":" of "10:30"."""
    if tok == "." and len(prev) == 1 and len(nxt) == 1 and prev.isalpha() and nxt.isalpha():
        return True
    if tok in ".:" and prev.isdigit() and nxt.isdigit():
        return True
    return tok == "," and prev.isdigit() and len(prev) <= 3 and len(nxt) == 3 and nxt.isdigit()
