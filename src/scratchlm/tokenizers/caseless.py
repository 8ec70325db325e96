"""The word tokenizer blind to case (`caseless`): "WHAT IS A GLACIER" and "what is a glacier" are the
same tokens, so a user's capitals cannot turn a known word into `<unk>` or a rarely seen variant.

Text splits into words exactly as the seed's word tokenizer splits it (word.py), and every word is
lower-cased before it is looked up. Decoding gives back the case of written English: each token
has a display form, the case it has most often in the training texts away from the start of a
sentence ("Earth", "DNA", "I", "the"; for a word seen only at sentence starts, its case there
unless that is only a capital first letter), the case it most often has after the word before it
where that differs ("Pacific Ocean" but "the ocean"), and the first word of each sentence is
capitalised. What it
gets wrong: a word written in two cases with two meanings ("the sun" once, "the Sun" elsewhere)
always takes its more common form.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable

from ..errors import TokenizerError
from .base import (
    MAX_VOCAB,
    SPECIALS,
    UNK_ID,
    TokenListTokenizer,
    check_token_list,
    check_vocab_limit,
    most_frequent,
)
from .word import Joiner, detokenize, split_words

_SENTENCE_ENDS = frozenset(".!?")


class CaselessWordTokenizer(TokenListTokenizer):
    kind = "caseless"

    def __init__(
        self,
        tokens: list[str],
        display: dict[str, str] | None = None,
        after: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """`tokens`: the vocabulary in id order (three specials, then lower-case words);
        `display`: token -> its display form, where that is not the token itself;
        `after`: previous token -> {token: its display form after that one}, where that differs
        from its own display form."""
        super().__init__(tokens)
        self.display = _check_display(display or {}, self._ids, "display")
        self.after = _check_after(after or {}, self._ids)
        if any(t != t.lower() for t in self.tokens[len(SPECIALS) :]):
            raise TokenizerError("caseless tokenizer tokens must be lower case")

    @classmethod
    def build(cls, texts: Iterable[str], vocab_size: int = MAX_VOCAB) -> "CaselessWordTokenizer":
        """Lower-cased words of `texts` (the `vocab_size - 3` most frequent if over), each with
        its most common case away from sentence starts as its display form, and the pairs of
        words whose second one usually takes another case after the first ("Pacific Ocean")."""
        check_vocab_limit(vocab_size, len(SPECIALS) + 1, cls.kind)
        counts, forms, pair_forms = Counter(), defaultdict(Counter), defaultdict(Counter)
        initial = defaultdict(Counter)  # forms at sentence starts: used for words seen only there
        for text in texts:
            words = split_words(text)
            for i, word in enumerate(words):
                counts[word.lower()] += 1
                if not _starts_sentence(words[max(0, i - 2) : i]) and words[i - 1] != ":":
                    forms[word.lower()][word] += 1
                    pair_forms[words[i - 1].lower(), word.lower()][word] += 1
                else:  # "The" says nothing, "DNA" does
                    initial[word.lower()][word.lower() if word == word.capitalize() else word] += 1
        for special in SPECIALS:
            counts.pop(special, None)
        if not counts:
            raise TokenizerError("cannot build a caseless tokenizer: the texts contain no words")
        tokens = list(SPECIALS) + most_frequent(counts, vocab_size - len(SPECIALS))
        known = set(tokens)
        display = {
            t: _most_common(forms[t] or initial[t]) for t in tokens if forms[t] or initial[t]
        }
        display = {t: form for t, form in display.items() if form != t}
        after = defaultdict(dict)
        for (prev, t), seen in sorted(pair_forms.items()):
            form = _most_common(seen)
            if prev in known and t in known and form != display.get(t, t):
                after[prev][t] = form
        return cls(tokens, display, dict(after))

    @staticmethod
    def vocabulary_size(texts: Iterable[str], min_count: int) -> int:
        """The `vocab_size` that keeps exactly the words `texts` use at least `min_count` times
        (most_frequent cuts at a count: the others become `<unk>`, in training too)."""
        counts = Counter(w.lower() for text in texts for w in split_words(text))
        return len(SPECIALS) + sum(
            1 for w, n in counts.items() if n >= min_count and w not in SPECIALS
        )

    def encode(self, text: str) -> list[int]:
        ids = self._ids
        return [ids.get(w.lower(), UNK_ID) for w in split_words(self._check_text(text))]

    def _join(self, tokens: list[str]) -> str:
        recase = Recaser(self)
        return detokenize([recase.push(t) for t in tokens])

    def decoder(self) -> "CaselessDecoder":
        return CaselessDecoder(self)

    def to_json(self) -> dict:
        return {
            **super().to_json(),
            "display": dict(self.display),
            "after": {prev: dict(forms) for prev, forms in self.after.items()},
        }

    @classmethod
    def from_json(cls, d: dict):
        tokens = check_token_list(d, cls.kind)
        return cls(tokens, d.get("display"), d.get("after"))


class Recaser:
    """Display forms, one token at a time: the token's usual case after the token before it (or
    its usual case), capitalised at the start of a sentence (the first word, and after . ! ?
    unless the full stop ends a one-letter abbreviation such as the "C." of "D.C.")."""

    def __init__(self, tokenizer: "CaselessWordTokenizer"):
        self.display, self.after = tokenizer.display, tokenizer.after
        self.before: list[str] = []  # the two tokens before this one

    def push(self, token: str) -> str:
        last = self.before[-1] if self.before else ""
        form = self.after.get(last, {}).get(token) or self.display.get(token, token)
        starts = _starts_sentence(self.before)
        self.before = [*self.before[-1:], token]
        return form[:1].upper() + form[1:] if starts else form


class CaselessDecoder:
    """`CaselessWordTokenizer.decoder`: ids pushed one at a time, the text `decode` gives."""

    def __init__(self, tokenizer: CaselessWordTokenizer):
        self.tokenizer, self.joiner = tokenizer, Joiner()
        self.recase = Recaser(tokenizer)

    def push(self, token: int) -> str:
        (token,) = self.tokenizer._check_ids([token])
        if token >= len(SPECIALS):  # decode drops the specials
            self.joiner.add(self.recase.push(self.tokenizer.tokens[token]))
        return self.joiner.text()


def _starts_sentence(before: list[str]) -> bool:
    """Whether a word after these (at most two) tokens starts a sentence: the first word, or one
    after . ! ? -- but not after the full stop of a one-letter abbreviation ("D.C. is")."""
    if not before:
        return True
    last, prev = before[-1], before[-2] if len(before) > 1 else ""
    return last in _SENTENCE_ENDS and not (last == "." and len(prev) == 1)


def _most_common(forms: Counter) -> str:
    """The most frequent form; ties to the first in sorted order (the same on every machine)."""
    return min(forms.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def _check_display(display, ids: dict[str, int], what: str) -> dict[str, str]:
    if not isinstance(display, dict):
        raise TokenizerError(f"caseless tokenizer JSON {what!r} must be an object")
    for token, form in display.items():
        if token not in ids or not isinstance(form, str) or form.lower() != token:
            raise TokenizerError(
                f"caseless tokenizer JSON {what!r} maps {token!r} to {form!r}: it must map a "
                "token of the vocabulary to the same word in another case"
            )
    return dict(display)


def _check_after(after, ids: dict[str, int]) -> dict[str, dict[str, str]]:
    if not isinstance(after, dict) or not all(prev in ids for prev in after):
        raise TokenizerError("caseless tokenizer JSON 'after' must map tokens to objects")
    return {prev: _check_display(forms, ids, "after") for prev, forms in after.items()}
