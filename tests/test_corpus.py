"""The bundled corpus: sizes, format and the properties a tiny model needs to learn it."""

import re
from collections import Counter
from pathlib import Path

import pytest

from scratchlm.examples import load_examples
from scratchlm.tokenizers import WordTokenizer
from scratchlm.tokenizers.word import split_words

DATA = Path(__file__).resolve().parents[1] / "data"
CHAT_RE = re.compile(r"User: (?P<q>.+?) Assistant: (?P<a>.+) </s>")


@pytest.fixture(scope="module")
def pretrain() -> list[str]:
    return load_examples(DATA / "pretrain.json")


@pytest.fixture(scope="module")
def chat() -> list[str]:
    return load_examples(DATA / "chat.json")


def test_sizes(pretrain, chat):
    assert len(pretrain) >= 420
    assert len(chat) >= 160


def test_every_example_ends_in_eos_once(pretrain, chat):
    for text in pretrain + chat:
        assert text.endswith(" </s>") and text.count("</s>") == 1, text


def test_no_duplicates(pretrain, chat):
    for examples in (pretrain, chat):
        repeated = [t for t, n in Counter(examples).items() if n > 1]
        assert not repeated


def test_chat_template_and_unique_questions(chat):
    matches = [CHAT_RE.fullmatch(text) for text in chat]
    assert all(matches), [t for t, m in zip(chat, matches, strict=True) if not m]
    # One-turn examples ask each question once; a conversation may start with one of them (and
    # then answers it the same way, test_bundled_data.py).
    questions = [m["q"] for m, text in zip(matches, chat, strict=True) if text.count("User:") == 1]
    repeated = [q for q, n in Counter(questions).items() if n > 1]
    assert not repeated
    assert "How do mountains form?" in questions


def test_chat_examples_are_short(chat):
    for text in chat:
        answers = re.findall(r"Assistant: (.+?)(?= User: | </s>$)", text)
        # one question and answer in 60 words; a conversation of several turns in the 80 of the
        # model's context
        assert len(split_words(text)) <= (60 if len(answers) == 1 else 80), text
        for answer in answers:
            assert len(answer.split()) <= 20, text


def test_vocabulary_is_modest_and_round_trips(pretrain, chat):
    tok = WordTokenizer.build(pretrain + chat)
    assert 1_000 <= tok.vocab_size <= 2_500
    for text in pretrain + chat:
        assert tok.decode(tok.encode(text)) + " </s>" == text
