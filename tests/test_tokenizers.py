"""Tokenizers: round trips (property-based), the seed's word rules, BPE training, JSON forms."""

import hashlib
import json
import os
import random
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scratchlm.errors import InputError, ScratchLMError, TokenizerError
from scratchlm.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    build_tokenizer,
    tokenizer_from_json,
)
from scratchlm.tokenizers.bpe import (
    _PRETOKEN_RE,
    BASE_VOCAB,
    MAX_PIECE,
    _count_pretokens,
    pretokenize,
    split_long,
)
from scratchlm.tokenizers.word import split_words

SMALL_TEXT = (
    "The quick brown fox jumps over the lazy dog. It's 3.14 degrees in the U.S. today!\n"
    "Mountains form when plates push together; rivers carve valleys over time. </s>\n"
) * 20
SAMPLES = [
    "",
    "a",
    "How do mountains form?",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\n",
    "naïve café — 東京 😀 مرحبا",
    "under_score snake_case __init__ 12345 3.14",
    "ends with eos </s> and continues",
    "x" * 5000,
    SMALL_TEXT,
]


def shakespeare_path() -> Path:
    env = os.environ.get("SCRATCHLM_SHAKESPEARE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared/data/tinyshakespeare.txt"


@pytest.fixture(scope="module")
def small_bpe() -> BPETokenizer:
    return BPETokenizer.build([SMALL_TEXT], vocab_size=400)


# --------------------------------------------------------------------------- round trips

no_eos_text = st.text(max_size=300).filter(lambda s: "</s>" not in s)


@settings(max_examples=150, deadline=None)
@given(s=st.text(max_size=300))
def test_bpe_round_trips_any_text_byte_exactly(small_bpe, s):
    ids = small_bpe.encode(s)
    assert small_bpe.decode(ids, skip_special=False) == s
    assert all(0 <= i < small_bpe.vocab_size for i in ids)
    assert len(ids) <= len(s.encode("utf-8"))


@settings(max_examples=100, deadline=None)
@given(s=no_eos_text)
def test_bpe_round_trips_without_specials(small_bpe, s):
    assert small_bpe.decode(small_bpe.encode(s)) == s


@pytest.mark.parametrize("s", SAMPLES)
def test_bpe_round_trip_samples(small_bpe, s):
    ids = small_bpe.encode(s)
    assert small_bpe.decode(ids, skip_special=False) == s
    assert len(ids) <= len(s.encode("utf-8"))


@settings(max_examples=150, deadline=None)
@given(s=no_eos_text)
def test_char_round_trips_text_of_known_characters(s):
    tok = CharTokenizer.build([s + "x"])
    ids = tok.encode(s)
    assert tok.decode(ids) == s
    assert len(ids) == len(s)
    assert all(3 <= i < tok.vocab_size for i in ids)


@pytest.mark.parametrize("s", SAMPLES)
def test_char_round_trip_samples(s):
    tok = CharTokenizer.build([SMALL_TEXT + s + "x"])
    assert tok.decode(tok.encode(s), skip_special=False) == s


word_alphabet = st.characters(
    codec="utf-8", exclude_categories=("Z", "C", "P", "S"), exclude_characters="_"
)
words = st.text(alphabet=word_alphabet, min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(ws=st.lists(words, max_size=40))
def test_word_round_trips_known_words_joined_by_spaces(ws):
    tok = WordTokenizer.build([" ".join(ws) + " filler"])
    text = " ".join(ws)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) == len(ws)
    assert all(3 <= i < tok.vocab_size for i in ids)


@pytest.mark.parametrize("kind", ["word", "caseless", "char", "bpe"])
def test_json_round_trip_rebuilds_the_same_tokenizer(kind):
    tok = build_tokenizer(kind, [SMALL_TEXT], vocab_size=300 if kind == "bpe" else None)
    again = tokenizer_from_json(tok.to_json())
    assert type(again) is type(tok) and again.to_json() == tok.to_json()
    assert again.encode(SMALL_TEXT) == tok.encode(SMALL_TEXT)
    assert (tok.pad_id, tok.unk_id, tok.eos_id) == (0, 1, 2)


@pytest.mark.parametrize("kind", ["word", "caseless", "char", "bpe"])
def test_eos_literal_encodes_to_eos_id(kind):
    tok = build_tokenizer(kind, [SMALL_TEXT], vocab_size=300 if kind == "bpe" else None)
    ids = tok.encode("the dog </s>")
    assert ids[-1] == tok.eos_id == 2
    assert tok.decode(ids) == tok.decode(ids[:-1])


@pytest.mark.parametrize("kind", ["word", "caseless", "char", "bpe"])
def test_decode_rejects_out_of_range_ids(kind):
    tok = build_tokenizer(kind, [SMALL_TEXT], vocab_size=300 if kind == "bpe" else None)
    with pytest.raises(InputError, match="out of range"):
        tok.decode([3, tok.vocab_size])
    with pytest.raises(InputError):
        tok.decode([-1])
    with pytest.raises(InputError):
        tok.encode(b"bytes")


# Tokens whose spacing depends on their neighbours: quotes, contractions, numbers, abbreviations.
STREAM_TEXT = (
    "She said \"it's 3.14 (U.S.) and 1,000 at 10:30\" - well-known, isn't it? ' odd `quote "
    "naïve café 東京 😀 </s> after the end"
)


@pytest.fixture(scope="module", params=["word", "caseless", "char", "bpe"])
def stream_tokenizer(request):
    return build_tokenizer(
        request.param, [SMALL_TEXT, STREAM_TEXT], vocab_size=300 if request.param == "bpe" else None
    )


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_decoder_pushes_give_what_decode_gives(stream_tokenizer, data):
    """A streamed answer (chat.TextStream, the server) reads the text through `decoder()`: after
    every push it equals `decode` of all the ids so far, specials, quotes and cut characters
    included."""
    known = stream_tokenizer.encode(STREAM_TEXT + " " + SMALL_TEXT[:200])
    ids = data.draw(
        st.lists(st.one_of(st.sampled_from(known), st.integers(0, 2)), max_size=60), "ids"
    )
    decoder = stream_tokenizer.decoder()
    for n, token in enumerate(ids, start=1):
        assert decoder.push(token) == stream_tokenizer.decode(ids[:n])


@pytest.mark.parametrize("kind", ["word", "caseless", "char", "bpe"])
def test_decoder_rejects_out_of_range_ids(kind):
    tok = build_tokenizer(kind, [SMALL_TEXT], vocab_size=300 if kind == "bpe" else None)
    with pytest.raises(InputError, match="out of range"):
        tok.decoder().push(tok.vocab_size)


# --------------------------------------------------------------------------- word rules


def test_word_split_matches_the_seed():
    assert split_words("How do mountains form?") == ["How", "do", "mountains", "form", "?"]
    assert split_words("level. </s>") == ["level", ".", "</s>"]
    assert split_words("it's (U.S.)") == ["it", "'", "s", "(", "U", ".", "S", ".", ")"]
    assert split_words("end.</s>") == ["end", ".", "</s>"]


def test_word_ids_specials_and_unknowns():
    tok = WordTokenizer.build(["How do mountains form? </s>"])
    assert tok.tokens[:3] == ["<pad>", "<unk>", "</s>"]
    assert tok.tokens[3:] == sorted(tok.tokens[3:]) == ["?", "How", "do", "form", "mountains"]
    assert tok.encode("</s>") == [2]
    assert tok.encode("How volcanoes form") == [
        tok.tokens.index("How"),
        1,
        tok.tokens.index("form"),
    ]
    assert tok.decode(tok.encode("How do mountains form?")) == "How do mountains form?"
    assert tok.decode([1, 0, 2], skip_special=False) == "<unk> <pad> </s>"


@pytest.mark.parametrize(
    "text",
    [
        "How do mountains form?",
        "It's cold, isn't it? Yes!",
        "The U.S. is large.",
        "Birds (like this one) sing; fish swim: they don't.",
        'She said "hello there" and left.',
        "Pi is 3.14 and a year has 365 days; 1,000 is more, at 10:30.",
        "A well-known and/or e.g. example...",
        "Prices rose 5% to $20 #1",
    ],
)
def test_word_decode_writes_punctuation_like_english(text):
    tok = WordTokenizer.build([text])
    assert tok.decode(tok.encode(text)) == text


def test_word_vocabulary_is_capped_keeping_the_most_frequent():
    texts = [" ".join(f"w{i}" for i in range(60_000)), "common " * 5, "rare"]
    tok = WordTokenizer.build(texts)
    assert tok.vocab_size == 50_000
    assert "common" in tok.tokens
    assert tok.tokens[3:] == sorted(tok.tokens[3:])
    small = WordTokenizer.build(["b b b a a c d"], vocab_size=5)
    assert small.tokens == ["<pad>", "<unk>", "</s>", "a", "b"]
    with pytest.raises(TokenizerError):
        WordTokenizer.build(["x"], vocab_size=50_001)


# --------------------------------------------------------------------------- BPE


def test_pretokens_join_back_and_keep_words_whole():
    text = "Hello, world! It's 2024 -- snake_case\n\n  end"
    assert "".join(pretokenize(text)) == text
    assert pretokenize("Hello world") == ["Hello", " world"]


def naive_bpe(text: str, n_merges: int) -> list[tuple[int, int]]:
    """Reference: recount every pair from scratch before each merge (slow, obviously right)."""
    words = Counter(p for segment in text.split("</s>") for p in pretokenize(segment))
    seqs = {w: [b + 3 for b in w.encode()] for w in words}
    merges = []
    for k in range(n_merges):
        counts = Counter()
        for w, seq in seqs.items():
            for pair in pairwise(seq):
                counts[pair] += words[w]
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        if counts[best] < 2:
            break
        merges.append(best)
        for w, seq in seqs.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(BASE_VOCAB + k)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seqs[w] = out
    return merges


def test_bpe_incremental_training_matches_naive_recount():
    text = SMALL_TEXT + "aaaa aaa banana bandana " * 3
    start = time.perf_counter()
    tok = BPETokenizer.build([text], vocab_size=BASE_VOCAB + 120)
    assert time.perf_counter() - start < 2.0
    assert tok.merges == naive_bpe(text, 120)
    assert len(tok.encode(text)) < len(text.encode()) / 2


@settings(max_examples=60, deadline=None)
@given(s=st.text(alphabet="aab ", max_size=200))
@example(s="a" * 150 + " " + "ab" * 80 + " aaab" * 20 + " baaa" * 5)
def test_bpe_incremental_training_matches_naive_on_repeats(s):
    # Runs like `aaaa` and `abab` are where merged neighbours overlap; long ones are also cut.
    tok = BPETokenizer.build([s], vocab_size=BASE_VOCAB + 20)
    assert tok.merges == naive_bpe(s, 20)


def sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj).encode()).hexdigest()[:16]


def test_bpe_ordinary_text_gives_the_same_merges_and_ids_as_before_pieces_were_bounded():
    # Expected values were computed by the code before long pre-tokens were cut.
    assert all(len(p) <= MAX_PIECE for p in _PRETOKEN_RE.findall(SMALL_TEXT))
    assert pretokenize(SMALL_TEXT) == _PRETOKEN_RE.findall(SMALL_TEXT)  # nothing to cut
    tok = BPETokenizer.build([SMALL_TEXT], vocab_size=400)
    assert len(tok.merges) == 93 and sha(tok.merges) == "89036dce2a855d6b"
    assert tok.encode("The quick brown fox, 3.14 rivers!\n  naïve 東京 </s>") == [
        289, 333, 346, 327, 47, 274, 49, 287, 349, 36, 13, 35, 35, 113,
        100, 198, 178, 261, 35, 233, 160, 180, 231, 189, 175, 35, 2,
    ]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(s=st.text(max_size=500))
def test_split_long_cuts_into_bounded_valid_chunks(s):
    chunks = split_long(s)
    assert "".join(chunks) == s
    assert all(0 < len(c) <= MAX_PIECE for c in chunks)
    assert all(len(c) == MAX_PIECE for c in chunks[:-1])
    for c in chunks:
        c.encode("utf-8")  # each chunk is valid text on its own


@pytest.mark.parametrize("ch", ["x", "é", "東", "😀", " ", "\n", "\t", "9", "!", "_"])
def test_long_runs_of_any_class_are_cut(ch):
    text = "ab " + ch * 1000 + " cd"
    pieces = pretokenize(text)
    assert "".join(pieces) == text
    assert all(len(p) <= MAX_PIECE for p in pieces)
    assert len(pieces) <= 4 + 1000 // MAX_PIECE


def random_text(n: int, alphabet: str, seed: int = 0) -> str:
    return "".join(random.Random(seed).choices(alphabet, k=n))


def test_bpe_round_trips_a_100k_letter_word():
    text = random_text(100_000, "abcdefghijklmnopqrstuvwxyz")
    counts = _count_pretokens([text])
    # Bounded work: ~1,600 pieces of at most MAX_PIECE letters instead of one 100k-letter word.
    assert sum(counts.values()) == -(-100_000 // MAX_PIECE)
    assert max(map(len, counts)) == MAX_PIECE
    tok = BPETokenizer.build([text], vocab_size=1024)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < 0.6 * len(text)  # random letters: merges help, not greatly
    assert max(len(tok.decode([i])) for i in range(BASE_VOCAB, tok.vocab_size)) <= MAX_PIECE


def test_bpe_round_trips_a_long_mixed_unicode_line_without_spaces():
    # Runs longer than MAX_PIECE of letters, digits, punctuation and tabs, with multi-byte
    # characters (2, 3 and 4 UTF-8 bytes) and combining accents, never a space.
    rng = random.Random(1)
    classes = ["abcé", "東京日本", "😀🎉", "0123456789", "!?.,-_", "\t", "e\u0301"]
    text = "".join(rng.choice(classes)[0] * rng.randint(1, 300) for _ in range(300))
    text += random_text(20_000, "".join(classes), seed=2)
    pieces = pretokenize(text)
    assert "".join(pieces) == text and max(map(len, pieces)) <= MAX_PIECE
    tok = BPETokenizer.build([text], vocab_size=800)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.vocab_size for i in ids)
    with_eos = text[:5000] + " </s> " + text[-5000:]
    assert tok.decode(tok.encode(with_eos), skip_special=False) == with_eos


def test_bpe_stops_when_no_pair_repeats():
    tok = BPETokenizer.build(["ab ab"], vocab_size=1000)
    assert tok.vocab_size < 1000
    assert tok.decode(tok.encode("ab ab xyz")) == "ab ab xyz"


def test_bpe_decode_of_a_cut_character_is_replaced_not_an_error(small_bpe):
    ids = small_bpe.encode("😀")
    assert small_bpe.decode(ids[:1]) == "\ufffd" * len(small_bpe.decode(ids[:1]))


def test_bpe_rejects_lone_surrogates(small_bpe):
    with pytest.raises(InputError, match="not valid Unicode"):
        small_bpe.encode("a\ud800b")


def test_bpe_shakespeare_quick():
    path = shakespeare_path()
    if not path.is_file():
        pytest.skip(f"{path} not found (set SCRATCHLM_SHAKESPEARE)")
    text = path.read_text(encoding="utf-8")
    start = time.perf_counter()
    tok = BPETokenizer.build([text], vocab_size=512)
    assert time.perf_counter() - start < 10
    assert tok.vocab_size == 512
    assert sha(tok.merges) == "4af73bb7fdff7b18"  # as before long pre-tokens were cut
    piece = text[:20_000]
    ids = tok.encode(piece)
    assert tok.decode(ids) == piece
    assert len(ids) < 0.6 * len(piece.encode())


# --------------------------------------------------------------------------- JSON forms


@pytest.mark.parametrize(
    "d",
    [
        None,
        [],
        {"type": "sentencepiece"},
        {"type": "word"},
        {"type": "word", "tokens": ["a", "b"]},
        {"type": "word", "tokens": ["<pad>", "<unk>", "</s>", "a", "a"]},
        {"type": "word", "tokens": ["<pad>", "<unk>", "</s>", 5]},
        {"type": "char", "tokens": ["<pad>", "<unk>", "</s>", "ab"]},
        {"type": "bpe", "merges": [[3, 4]]},
        {"type": "bpe", "pattern": "x", "merges": [[3, 4]]},
        {"type": "bpe", "pattern": BPETokenizer([]).to_json()["pattern"], "merges": [[3, 259]]},
        {
            "type": "bpe",
            "pattern": BPETokenizer([]).to_json()["pattern"],
            "merges": [[3, 4], [3, 4]],
        },
        {"type": "bpe", "pattern": BPETokenizer([]).to_json()["pattern"], "merges": [[0, 4]]},
        {"type": "bpe", "pattern": BPETokenizer([]).to_json()["pattern"], "merges": "x"},
        {**BPETokenizer([]).to_json(), "max_piece": 128},
    ],
)
def test_malformed_tokenizer_json_raises(d):
    with pytest.raises(TokenizerError) as info:
        tokenizer_from_json(d)
    assert isinstance(info.value, ScratchLMError)


def test_bpe_json_without_max_piece_still_loads():
    # Files written before pieces were bounded: same merges, encoded with today's bound.
    d = {k: v for k, v in BPETokenizer([[3, 4]]).to_json().items() if k != "max_piece"}
    assert tokenizer_from_json(d).merges == [(3, 4)]


def test_build_tokenizer_rejects_unknown_kind_and_bad_sizes():
    with pytest.raises(TokenizerError, match="unknown tokenizer"):
        build_tokenizer("sentencepiece", ["x"])
    with pytest.raises(TokenizerError):
        build_tokenizer("bpe", ["x"], vocab_size=100)
    with pytest.raises(TokenizerError):
        build_tokenizer("word", ["   "])
