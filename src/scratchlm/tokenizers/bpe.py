"""Byte-level byte-pair encoding (BPE), trained by our own code.

Ids: the three specials (0-2), then the 256 byte values (3-258), then one id per learned merge in
the order they were learned. Since every byte has an id, any Unicode text encodes without `<unk>`
and decodes back byte for byte; only the literal `</s>` is special (it becomes `eos_id`, and
decodes to "</s>" when specials are kept).

Text is first cut into pre-tokens with a GPT-2-like regular expression (words with their leading
space, numbers, punctuation runs, whitespace) so that merges never cross a word boundary. Training
counts each distinct pre-token once with its frequency and keeps incremental pair counts: after a
merge only the words that contained the merged pair are visited, and in them only the pairs next
to a merged occurrence change. Encoding applies the merges in the order learned and caches the
result for every distinct pre-token.

Long runs: a pre-token longer than `MAX_PIECE` characters (a 100,000-letter "word", a long run of
spaces, digits or punctuation) is cut every `MAX_PIECE` characters, the same way in training and
encoding. Work on one piece grows with the square of its length, so with the bound any input
trains and encodes in time linear in its length, and memory grows with the number of distinct
pieces (at most the input's length). Ordinary words are far shorter, so for them nothing changes.
The cost: no token spans more than `MAX_PIECE` characters, and a long run is cut at fixed places
(between characters, possibly between a letter and its combining accent; round trips stay exact).

Not handled: strings with lone surrogates (they are not valid Unicode and cannot be UTF-8 encoded).
"""

import gc
import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from contextlib import contextmanager
from itertools import pairwise

from ..errors import InputError, TokenizerError
from .base import EOS, EOS_ID, MAX_VOCAB, SPECIALS, Tokenizer, check_vocab_limit

BYTE_OFFSET = len(SPECIALS)  # id of byte 0
BASE_VOCAB = BYTE_OFFSET + 256  # id of the first merge

# GPT-2's pattern rewritten for the stdlib `re` (no \p{L}): [^\W\d_] is "a letter", \d "a digit".
# The alternatives cover every character, so joining the pieces always gives back the text.
PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:_|[^\s\w])+|\s+(?!\S)|\s+"""
_PRETOKEN_RE = re.compile(PATTERN)

# Longest pre-token piece, in characters (at most 4 UTF-8 bytes each). Nearly all words are under
# 30 letters; 64 keeps long names, numbers and indentation whole while keeping the quadratic work
# per piece small (a 100k-letter word becomes ~1,600 pieces of 64 instead of one of 100k).
MAX_PIECE = 64

_CACHE_LIMIT = 500_000  # distinct pre-tokens remembered by `encode` before the cache is reset

Pair = tuple[int, int]


def pretokenize(text: str) -> list[str]:
    """The pre-tokens of `text` (which must not contain `</s>`), each at most `MAX_PIECE`
    characters; they join back to `text`."""
    pieces = _PRETOKEN_RE.findall(text)
    if max(map(len, pieces), default=0) <= MAX_PIECE:
        return pieces  # the usual case: nothing to cut
    return [chunk for piece in pieces for chunk in split_long(piece)]


def split_long(piece: str) -> list[str]:
    """`piece` cut into runs of `MAX_PIECE` characters (the last may be shorter). Cutting between
    characters, never inside one's UTF-8 bytes, keeps every chunk valid text."""
    return [piece[i : i + MAX_PIECE] for i in range(0, len(piece), MAX_PIECE)]


class BPETokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, merges: list[Pair]):
        """`merges[k]` is the pair of ids that id `BASE_VOCAB + k` stands for."""
        self.merges = [(int(a), int(b)) for a, b in merges]
        self._ranks = {pair: BASE_VOCAB + k for k, pair in enumerate(self.merges)}
        self._bytes = [s.encode() for s in SPECIALS] + [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self._bytes.append(self._bytes[a] + self._bytes[b])
        self._cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def build(
        cls, texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2
    ) -> "BPETokenizer":
        """Learn merges from `texts` until `vocab_size` ids exist or no pair occurs
        `min_frequency` times (then the vocabulary is smaller than asked)."""
        check_vocab_limit(vocab_size, BASE_VOCAB, cls.kind)
        counts = _count_pretokens(texts)
        with _cycle_collector_paused():
            merges = _train(counts, vocab_size - BASE_VOCAB, min_frequency)
        return cls(merges)

    @property
    def vocab_size(self) -> int:
        return BASE_VOCAB + len(self.merges)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for k, segment in enumerate(self._check_text(text).split(EOS)):
            if k:
                ids.append(EOS_ID)
            for piece in pretokenize(segment):
                cached = self._cache.get(piece)
                if cached is None:
                    cached = self._encode_piece(piece)
                ids.extend(cached)
        return ids

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        ids = self._check_ids(ids)
        if skip_special:
            ids = [i for i in ids if i >= BYTE_OFFSET]
        # Generated ids can stop in the middle of a multi-byte character: show U+FFFD there.
        return b"".join([self._bytes[i] for i in ids]).decode("utf-8", errors="replace")

    def to_json(self) -> dict:
        return {
            "type": self.kind,
            "pattern": PATTERN,
            "max_piece": MAX_PIECE,
            "merges": [list(m) for m in self.merges],
        }

    @classmethod
    def from_json(cls, d: dict) -> "BPETokenizer":
        if d.get("pattern") != PATTERN:
            raise TokenizerError("bpe tokenizer JSON has a missing or unsupported 'pattern'")
        # Files written before pieces were bounded have no 'max_piece'; their merges still apply.
        if d.get("max_piece", MAX_PIECE) != MAX_PIECE:
            raise TokenizerError(f"bpe tokenizer JSON needs 'max_piece' {MAX_PIECE}")
        merges = d.get("merges")
        if not isinstance(merges, list):
            raise TokenizerError("bpe tokenizer JSON needs 'merges': a list of id pairs")
        if BASE_VOCAB + len(merges) > MAX_VOCAB:
            raise TokenizerError(f"bpe tokenizer has {len(merges):,} merges, over the limit")
        seen: set[Pair] = set()
        for k, m in enumerate(merges):
            ok = isinstance(m, list) and len(m) == 2 and all(type(i) is int for i in m)
            if not ok or not all(BYTE_OFFSET <= i < BASE_VOCAB + k for i in m):
                raise TokenizerError(f"bpe merge {k} must be two earlier token ids, got {m!r}")
            if tuple(m) in seen:
                raise TokenizerError(f"bpe merge {k} repeats the pair {m!r}")
            seen.add(tuple(m))
        return cls(merges)

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        """Apply the merges, lowest rank first, to one pre-token; remember the answer."""
        ids = [b + BYTE_OFFSET for b in _utf8(piece)]
        ranks = self._ranks
        while len(ids) > 1:
            best = min(pairwise(ids), key=lambda p: ranks.get(p, MAX_VOCAB))
            if best not in ranks:
                break
            ids = _merge(ids, best, ranks[best])
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[piece] = result = tuple(ids)
        return result


def _utf8(piece: str) -> bytes:
    try:
        return piece.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"text is not valid Unicode: {e.reason} ({piece[e.start]!r})") from None


def _count_pretokens(texts: Iterable[str]) -> Counter:
    counts: Counter = Counter()
    for text in texts:
        for segment in text.split(EOS):
            counts.update(pretokenize(segment))
    return counts


@contextmanager
def _cycle_collector_paused():
    """Training makes millions of small lists, sets and tuples. None is in a reference cycle, so
    reference counting frees them, but Python's cycle collector would scan them all again and
    again: pausing it halves training time on a 2 MB text of rare words."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _merge(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """`ids` with each non-overlapping `pair`, scanning left to right, replaced by `new_id`."""
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _train(counts: Counter, n_merges: int, min_frequency: int) -> list[Pair]:
    """Learn up to `n_merges` merges from pre-token counts, always merging the most frequent pair
    (ties: the smallest pair of ids, so training is deterministic)."""
    words = [[b + BYTE_OFFSET for b in _utf8(piece)] for piece in counts]
    freqs = list(counts.values())
    pair_counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)  # pair -> words that have (or had) it
    for wi, word in enumerate(words):
        for pair in pairwise(word):
            pair_counts[pair] += freqs[wi]
            where[pair].add(wi)
    # A max-heap of (count, pair) whose counts may be too high, never too low: a pair is pushed
    # again when its count grows, and an entry found too high when popped is pushed back corrected.
    # So the first entry popped with its pair's true count is the most frequent pair.
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    while len(merges) < n_merges:
        best = _pop_best(heap, pair_counts)
        if best is None or pair_counts[best] < min_frequency:
            break
        new_id = BASE_VOCAB + len(merges)
        merges.append(best)
        for pair in _apply_merge(best, new_id, words, freqs, pair_counts, where):
            if pair_counts[pair] > 0:
                heapq.heappush(heap, (-pair_counts[pair], pair))
    return merges


def _pop_best(heap: list, pair_counts: dict[Pair, int]) -> Pair | None:
    """The most frequent pair (ties: the smallest), or None when no pair is left."""
    while heap:
        neg_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count == -neg_count:
            return pair
        if 0 < count < -neg_count:  # too high: the pair goes back in with its real count
            heapq.heappush(heap, (-count, pair))
    return None


def _apply_merge(pair, new_id, words, freqs, pair_counts, where) -> set[Pair]:
    """Merge `pair` in every word that has it, updating counts and the index; return the pairs
    whose counts grew.

    Only pairs touching a merged occurrence change: `x a b y` -> `x N y` takes one (x, a), (a, b),
    (b, y) away and adds one (x, N), (N, y), times the word's frequency. `x` is read from the
    merged output, so in `a b a b` -> `N N` the second merge sees `N` on its left. `where` may
    keep words that lost a pair; merging such a word again finds nothing to do."""
    a, b = pair
    grown: set[Pair] = set()
    for wi in where.pop(pair):
        word, f = words[wi], freqs[wi]
        out: list[int] = []
        i, n = 0, len(word)
        while i < n:
            if not (word[i] == a and i + 1 < n and word[i + 1] == b):
                out.append(word[i])
                i += 1
                continue
            pair_counts[pair] -= f
            if out:  # left neighbour x: (x, a) -> (x, N)
                lost, gained = (out[-1], a), (out[-1], new_id)
                pair_counts[lost] -= f
                pair_counts[gained] += f
                where[gained].add(wi)
                grown.add(gained)
            if i + 2 < n:  # right neighbour y: (b, y) -> (N, y)
                lost, gained = (b, word[i + 2]), (new_id, word[i + 2])
                pair_counts[lost] -= f
                pair_counts[gained] += f
                where[gained].add(wi)
                grown.add(gained)
            out.append(new_id)
            i += 2
        words[wi] = out
    return grown
