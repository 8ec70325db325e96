"""Reading a user's words as the words a model knows: case, missing apostrophes and misspellings.

A model with a word vocabulary reads a word it never trained on as `<unk>`, so "captial" or
"tornados" lose the question's subject. `InputCorrector(tokenizer).correct(text)` rewrites each
word the model does not know, left to right, as the first of these that applies:

- case (the seed's `word` tokenizer, which keeps case; `caseless` ignores case already): the
  vocabulary's word in another case, "GLACIER" -> "glacier", "egypt" -> "Egypt";
- a missing apostrophe: "dont" -> "don't", "whats" -> "what's", "youre" -> "you're", when both
  parts are known ("n't", or a tail after a pronoun or question word: "ants" is not "ant's");
- another ending of a known word: the two are the same start of at least STEM letters followed
  by ENDINGS, "tornados" -> "tornado", "talked" -> "talk" (but "tablet" is not "table");
- a word of English (in pyspellchecker's list of 160,000 words with their counts: "cake",
  "riddle", "hamlet", "Sweden") stays as typed: it is a real word the model does not know, and
  reading it as a known one ("make", "middle", "helmet", "seven") would answer a question nobody
  asked;
- two known words run together ("thankyou" -> "thank you"), for a word that is no word of English
  (below): the split whose shorter part is longest;
- a misspelling: the known word at the smallest edit distance (Damerau-Levenshtein, in the
  optimal-string-alignment form: an insertion, deletion, substitution or swap of neighbours
  costs 1), at most 1 for words of up to 5 letters and 2 for longer ones, and for three-letter
  words only a dropped letter ("wht" -> "what", but "thx" is not "the"); among equally close
  words the one English uses most ("wht" -> "what", not "whit").

Words of one or two letters, words with digits, the part of a contraction before its apostrophe
and words with no close known word stay as typed.
Candidates are found by the symmetric-delete method: every known word is indexed under the
strings left by deleting up to two of its letters, so a query looks up its own deletions instead
of comparing itself with the whole vocabulary. Not handled: split or joined words ("ice berg"),
wrong but real words ("there" for "their", "dose" for "does"), other languages. Tokenizers without
words (char, bpe) leave the text as it is.
"""

import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from itertools import combinations

from .tokenizers.base import SPECIALS
from .tokenizers.word import _TOKEN_RE, split_words

STEM = 4  # letters two endings of one word share
ENDINGS = frozenset(("", "s", "es", "e", "d", "ed"))  # "tornado" + "s" and "tornado" + "es"
_CONTRACTIONS = ("t", "re", "ve", "ll", "d", "m", "s")  # "dont" -> "don" + "'" + "t"
# The words these tails follow; elsewhere "larget" is not "large't" nor "ants" "ant's".
_HEADS = frozenset(
    [
        "i",
        "you",
        "we",
        "they",
        "he",
        "she",
        "it",
        "that",
        "there",
        "what",
        "where",
        "who",
        "how",
        "when",
        "why",
    ]
)
_LETTERS = re.compile(r"[^\W\d_]+")  # a word of letters only


@cache
def english_counts():
    """How often English uses each lower-case word (pyspellchecker's list), read once."""
    from spellchecker import SpellChecker

    return SpellChecker(language="en", distance=1).word_frequency


@dataclass(frozen=True)
class Correction:
    typed: str  # the word as the user typed it
    read: str  # what the model reads instead


class InputCorrector:
    """Rewrites the words of a text that a model does not know as ones it does (module docstring)."""

    def __init__(self, tokenizer):
        kind = getattr(tokenizer, "kind", None)
        self.active = kind in ("word", "caseless")
        self.caseless = kind == "caseless"
        tokens = getattr(tokenizer, "tokens", [])
        self.known = set(tokens)
        self.by_lower: dict[str, list[str]] = defaultdict(list)  # "egypt" -> ["Egypt", "egypt"]
        for w in tokens[len(SPECIALS) :]:
            if w.isalpha():
                self.by_lower[w.lower()].append(w)
        self._index: dict[str, set[str]] | None = None  # built at the first misspelling

    def correct(self, text: str) -> tuple[str, list[Correction]]:
        """-> (the text with its unknown words rewritten, what was rewritten)."""
        if not self.active:
            return text, []
        out, fixes, end = [], [], 0
        for m in _TOKEN_RE.finditer(text):
            word = m.group()
            if text[m.end() : m.end() + 1] == "'":  # "wasn" of "wasn't": not a word alone
                continue
            read = self.read(word)
            if read != word:
                out.append(text[end : m.start()] + read)
                fixes.append(Correction(word, read))
                end = m.end()
        return "".join(out) + text[end:], fixes

    def read(self, word: str) -> str:
        """The word the model should read for `word` (itself when known or beyond repair)."""
        if self._is_known(word) or not _LETTERS.fullmatch(word):
            return word
        lower = word.lower()
        if lower in self.by_lower:
            return self._in_vocab_case(lower)
        if len(word) < 3:
            return word
        for tail in _CONTRACTIONS:
            if read := self._contraction(word, lower, tail):
                return read
        best = self._other_ending(lower)
        if best is None and not english_counts()[lower]:
            if joined := self._split(lower):
                return " ".join(self._in_vocab_case(part) for part in joined)
            best = self._closest(lower)
        return word if best is None else self._in_vocab_case(best)

    def _split(self, lower: str) -> tuple[str, str] | None:
        """Two known words, of three letters or more, that make up `lower`, if any."""
        splits = [(lower[:i], lower[i:]) for i in range(3, len(lower) - 2)]
        splits = [(a, b) for a, b in splits if a in self.by_lower and b in self.by_lower]
        return max(splits, key=lambda ab: min(len(ab[0]), len(ab[1])), default=None)

    def _contraction(self, word: str, lower: str, tail: str) -> str | None:
        """`word` with the apostrophe of the contraction ending in `tail` put back, if both parts
        are known ("n't", or a tail after a pronoun or question word)."""
        head = lower[: -len(tail)]
        if not lower.endswith(tail) or head not in self.by_lower:
            return None
        if not ((head[-1:] == "n") if tail == "t" else head in _HEADS):
            return None
        if not all(self._is_known(p) for p in split_words(f"{head}'{tail}")):
            return None
        return self._in_vocab_case(head) + "'" + word[len(head) :]

    def _is_known(self, word: str) -> bool:
        return (word.lower() if self.caseless else word) in self.known

    def _in_vocab_case(self, lower: str) -> str:
        """The vocabulary's form of `lower`: itself, else capitalised ("egypt" -> "Egypt"), else
        any ("dna" -> "DNA")."""
        forms = self.by_lower[lower]
        return next((f for f in (lower, lower.capitalize()) if f in forms), forms[0])

    def _other_ending(self, lower: str) -> str | None:
        """The known word that is `lower` with another ending, if any (the longest shared
        start first, then the one English uses most)."""
        found = []
        for w in self._candidates(lower, 2):
            n = len(_common_prefix(lower, w))
            if n >= STEM and lower[n:] in ENDINGS and w[n:] in ENDINGS:
                found.append((-n, -english_counts()[w], w))
        return min(found)[2] if found else None

    def _closest(self, lower: str) -> str | None:
        limit = 1 if len(lower) <= 5 else 2
        english = english_counts()
        scored = [(distance(lower, w), -english[w], w) for w in self._candidates(lower, limit)]
        scored = [s for s in scored if s[0] <= limit and (len(lower) > 3 or len(s[2]) == 4)]
        return min(scored)[2] if scored else None

    def _candidates(self, lower: str, n: int) -> set[str]:
        """The known words that deleting up to `n` letters of each side can make equal."""
        index = self._deletion_index()
        return {w for d in _deletions(lower, n) for w in index.get(d, ())}

    def _deletion_index(self) -> dict[str, set[str]]:
        if self._index is None:
            self._index = defaultdict(set)
            for w in self.by_lower:
                for d in _deletions(w, 2):
                    self._index[d].add(w)
        return self._index


def _common_prefix(a: str, b: str) -> str:
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return a[:n]


def _deletions(word: str, n: int) -> set[str]:
    """`word` and every string left by deleting up to `n` of its letters."""
    out = {word}
    for k in range(1, min(n, len(word) - 1) + 1):
        for drop in combinations(range(len(word)), k):
            out.add("".join(c for i, c in enumerate(word) if i not in drop))
    return out


def distance(a: str, b: str) -> int:
    """Edit distance with swaps of neighbours (optimal string alignment): "captial" -> "capital"
    is 1."""
    prev2, prev = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]
