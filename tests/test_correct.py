"""The input corrector: a user's unknown words read as the words a model knows, real words kept."""

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.correct import InputCorrector, distance
from scratchlm.tokenizers import build_tokenizer

TEXTS = [
    "What is the capital of France? Paris is the capital of France. </s>",
    "How do tornadoes form? A tornado is a spinning column of air. </s>",
    "Who was Albert Einstein? Albert Einstein was a scientist. I don't know what you mean. </s>",
    "What is gravity? Gravity pulls things down. What's the largest mammal? Egypt has pyramids. </s>",
    "Can you make bread? Yes. Why is the sky blue? The middle of the sky is blue. Thank you. </s>",
]


@pytest.fixture(scope="module", params=["caseless", "word"])
def corrector(request) -> InputCorrector:
    return InputCorrector(build_tokenizer(request.param, TEXTS))


@pytest.mark.parametrize(
    "typed, read",
    [
        ("what is the captial of france", "what is the capital of france"),  # swapped letters
        ("who was albert einstien", "who was albert einstein"),
        ("what is gravty", "what is gravity"),  # a dropped letter
        ("how do tornados form", "how do tornado form"),  # another ending of a known word
        ("wht is gravity", "what is gravity"),  # three letters: only a dropped one
        ("i dont know", "i don't know"),  # a missing apostrophe
        ("whats the largest mamal", "what's the largest mammal"),
        ("thankyou", "thank you"),  # two words run together
    ],
)
def test_unknown_words_are_read_as_known_ones(corrector, typed, read):
    got, fixes = corrector.correct(typed)
    if corrector.caseless:
        assert got == read
    else:  # the word tokenizer also gives the vocabulary's case ("Albert", "Einstein")
        assert got.lower() == read.lower()
    assert fixes and all(f.typed in typed and f.read in got for f in fixes)


@pytest.mark.parametrize(
    "text",
    [
        "can you make cake",  # "cake" is English, not "make"
        "tell me a riddle",  # not "middle"
        "what is the capital of Sweden",  # a real name, not "seven"
        "thx",  # three letters: not "the"
        "it wasn't me",  # a contraction's first part is not a word alone
        "",
        "   spaced    out   ",
        "naïve café 東京 😀 3.14 x1y2",
        "ok",
    ],
)
def test_real_words_and_the_rest_stay_as_typed(text):
    corrector = InputCorrector(build_tokenizer("caseless", TEXTS))
    assert corrector.correct(text) == (text, [])


def test_the_word_tokenizer_gets_the_vocabularys_case():
    corrector = InputCorrector(build_tokenizer("word", TEXTS))
    assert corrector.correct("WHAT IS GRAVITY in egypt")[0] == "what is gravity in Egypt"


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_tokenizers_without_words_leave_the_text_alone(kind):
    tok = build_tokenizer(kind, TEXTS, vocab_size=300 if kind == "bpe" else None)
    assert InputCorrector(tok).correct("captial of frnace") == ("captial of frnace", [])


def test_a_long_text_keeps_its_length_and_spacing():
    corrector = InputCorrector(build_tokenizer("caseless", TEXTS))
    text = " ".join(["the captial", "of\tfrance"] * 1000)
    got, fixes = corrector.correct(text)
    assert got == text.replace("captial", "capital") and len(fixes) == 1000


def test_candidates_are_the_closest_words_of_the_whole_vocabulary():
    """The symmetric-delete index finds what comparing with every known word finds (for the words
    of three letters or more that the corrector corrects)."""
    corrector = InputCorrector(build_tokenizer("caseless", TEXTS))
    vocabulary = list(corrector.by_lower)
    rng = random.Random(0)
    for _ in range(300):
        w = list(rng.choice(vocabulary))
        for _ in range(rng.randint(1, 2)):  # one or two random edits
            i = rng.randrange(len(w) + 1)
            op = rng.choice("idsx")
            letter = rng.choice(string.ascii_lowercase)
            if op == "i":
                w.insert(i, letter)
            elif op == "d" and len(w) > 1 and i < len(w):
                del w[i]
            elif op == "s" and i < len(w):
                w[i] = letter
            elif op == "x" and i + 1 < len(w):
                w[i], w[i + 1] = w[i + 1], w[i]
        typed = "".join(w)
        if len(typed) < 3:  # never corrected
            continue
        limit = 1 if len(typed) <= 5 else 2
        brute = {v for v in vocabulary if distance(typed, v) <= limit}
        assert {
            v for v in corrector._candidates(typed, limit) if distance(typed, v) <= limit
        } == brute


@settings(max_examples=200, deadline=None)
@given(a=st.text(alphabet="abc", max_size=7), b=st.text(alphabet="abc", max_size=7))
def test_distance_is_a_symmetric_edit_count(a, b):
    d = distance(a, b)
    assert d == distance(b, a) and (d == 0) == (a == b)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))


@pytest.mark.parametrize(
    "a, b, d",
    [
        ("captial", "capital", 1),
        ("kitten", "sitting", 3),
        ("", "abc", 3),
        ("ab", "ba", 1),
        ("ca", "abc", 3),
    ],  # optimal string alignment: a swapped pair is not edited again
)
def test_distance_values(a, b, d):
    assert distance(a, b) == d
