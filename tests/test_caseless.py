"""The caseless word tokenizer: blind to the case of what it reads, writing English case back."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.chat_format import split_answer
from scratchlm.errors import TokenizerError
from scratchlm.tokenizers import CaselessWordTokenizer, WordTokenizer, tokenizer_from_json

DATA = Path(__file__).resolve().parents[1] / "data"
TEXTS = [
    "The Sun is a star. Where is the Sun? Paris is the capital of France. </s>",
    "The Pacific Ocean is the largest ocean. DNA carries the instructions. I am here! </s>",
    "Washington, D.C. is the capital of the United States. what is the capital of france </s>",
]


@pytest.fixture(scope="module")
def tok() -> CaselessWordTokenizer:
    return CaselessWordTokenizer.build(TEXTS)


@pytest.mark.parametrize(
    "typed",
    ["WHAT IS THE CAPITAL OF FRANCE", "what is the capital of france", "What Is The Capital"],
)
def test_case_does_not_change_the_tokens(tok, typed):
    assert tok.encode(typed) == tok.encode(typed.lower())
    assert 1 not in tok.encode(typed)  # no <unk>: every word is known in some case


@pytest.mark.parametrize(
    "text, written",
    [
        ("the sun is a star", "The Sun is a star"),
        ("paris is the capital of france.", "Paris is the capital of France."),
        ("dna carries the instructions. i am here!", "DNA carries the instructions. I am here!"),
        ("the pacific ocean is the largest ocean", "The Pacific Ocean is the largest ocean"),
        ("washington, d.c. is the capital", "Washington, D.C. is the capital"),  # no "Is"
        ("where is the sun? the sun is a star", "Where is the Sun? The Sun is a star"),
        ("", ""),
    ],
)
def test_decoding_writes_english_case(tok, text, written):
    assert tok.decode(tok.encode(text)) == written


def test_tokens_are_lower_case_and_fewer_than_the_word_tokenizers(tok):
    assert all(t == t.lower() for t in tok.tokens)
    assert tok.vocab_size < WordTokenizer.build(TEXTS).vocab_size


def test_the_bundled_answers_come_back_in_their_case():
    """Decoding restores the case of all but a few of the answers the demo model writes; the
    exceptions are words whose case depends on the meaning ("in the sun" once, "the Sun" often)."""
    texts = json.loads((DATA / "pretrain.json").read_text())
    chat = json.loads((DATA / "chat.json").read_text())
    tok, word = CaselessWordTokenizer.build(texts + chat), WordTokenizer.build(texts + chat)
    answers = {split_answer(x)[1] for x in chat}
    wrong = [a for a in answers if tok.decode(tok.encode(a)) != word.decode(word.encode(a))]
    assert len(wrong) <= 0.01 * len(answers)


words = st.text(alphabet="abcXYZéÉ", min_size=1, max_size=8)


@settings(max_examples=100, deadline=None)
@given(ws=st.lists(words, max_size=30))
def test_round_trip_up_to_case(ws):
    tok = CaselessWordTokenizer.build([" ".join(ws) + " filler"])
    text = " ".join(ws)
    assert tok.decode(tok.encode(text)).lower() == text.lower()
    assert len(tok.encode(text)) == len(ws)


def test_json_keeps_display_forms(tok):
    again = tokenizer_from_json(json.loads(json.dumps(tok.to_json())))
    assert again.to_json() == tok.to_json() and again.display["sun"] == "Sun"
    assert again.decode(again.encode("the pacific ocean")) == "The Pacific Ocean"


@pytest.mark.parametrize(
    "change",
    [
        {"display": {"sun": "Moon"}},  # not the same word
        {"display": {"nowhere": "Nowhere"}},  # not a token
        {"display": ["Sun"]},
        {"after": {"the": {"sun": "SUNNY"}}},
        {"after": {"nowhere": {}}},
        {"after": "x"},
        {"tokens": ["<pad>", "<unk>", "</s>", "Sun"]},  # tokens are lower case
    ],
)
def test_malformed_json_raises(tok, change):
    with pytest.raises(TokenizerError):
        tokenizer_from_json({**tok.to_json(), **change})
