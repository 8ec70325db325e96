"""Chat: the conversation template and window, settings commands, streaming text, and the real
`scratchlm chat` and `scratchlm generate` processes (chat driven through a pseudo-terminal)."""

import json
from pathlib import Path

import pytest

from scratchlm import Model, ModelConfig
from scratchlm.chat import ChatSession, Settings, TextStream, render
from scratchlm.errors import InputError
from scratchlm.tokenizers import BPETokenizer, WordTokenizer

ROOT = Path(__file__).resolve().parents[1]
CHAT_DATA = json.loads((ROOT / "data" / "chat.json").read_text())


@pytest.fixture(scope="module")
def model():
    """A tiny untrained model with the word tokenizer of the bundled chat set."""
    tok = WordTokenizer.build(CHAT_DATA)
    cfg = ModelConfig(vocab_size=tok.vocab_size, d_model=16, n_heads=2, d_ff=32, max_seq_len=48)
    return Model(cfg, tokenizer=tok, seed=0)


def greedy_answer(model, question):
    return "".join(ChatSession(model).reply(question))


# ------------------------------------------------------------------------------- streaming text


@pytest.mark.parametrize(
    "text",
    [
        "It's 3.14 degrees in the U.S. today, isn't it?",
        'She said "hello (and goodbye)" - then left; 1,000 people/day.',
        "Mountains form when plates push together.",
    ],
)
def test_text_stream_releases_final_text_only(text):
    tok = WordTokenizer.build([text])
    ids = tok.encode(text)
    stream = TextStream(tok)
    pieces = [stream.push(i) for i in ids]
    released = "".join(pieces)
    assert released + stream.flush() == tok.decode(ids)
    assert len(released) > len(tok.decode(ids)) // 2  # it streams, not all at the end
    for k in range(1, len(ids) + 1):  # what is out never changes afterwards
        assert tok.decode(ids).startswith("".join(pieces[:k]))


def test_text_stream_with_split_utf8_characters():
    text = "naïve café — 東京 😀"
    tok = BPETokenizer.build([text], vocab_size=260)
    ids = tok.encode(text)
    stream = TextStream(tok)
    out = "".join(stream.push(i) for i in ids) + stream.flush()
    assert out == text


# ------------------------------------------------------------------------------ the conversation


def test_template_matches_the_training_data():
    assert render([], "Why?") == "User: Why? Assistant:"
    assert render([("Hi", "Hello.")], "Why?") == "User: Hi Assistant: Hello. User: Why? Assistant:"
    q, a = CHAT_DATA[0].removesuffix(" </s>").split(" Assistant: ")
    assert render([], q.removeprefix("User: ")) + " " + a + " </s>" == CHAT_DATA[0]


def test_reply_is_the_greedy_generation_and_joins_the_conversation(model):
    session = ChatSession(model)
    question = "What causes rain?"
    ids = model.tokenizer.encode(render([], question))
    expected = model.tokenizer.decode(model.generate(ids, max_new_tokens=64))
    assert "".join(session.reply(question)) == expected
    assert session.turns == [(question, expected)]


def test_oldest_turns_are_forgotten_to_leave_room_for_the_answer(model):
    session = ChatSession(model, Settings(max_tokens=10))
    session.turns = [(f"Question number {i}?", "An answer of some words.") for i in range(5)]
    ids = session.prompt_ids("What causes rain?")
    assert len(ids) <= 48 - 10
    assert 0 < len(session.turns) < 5
    assert session.turns[-1][0] == "Question number 4?"  # the newest stay


def test_over_long_and_empty_questions(model):
    session = ChatSession(model)
    with pytest.raises(InputError, match="10,001 characters; the limit is 10,000"):
        session.reply("x" * 10_001)
    with pytest.raises(InputError, match="empty"):
        session.reply("   ")
    assert session.turns == []


def test_settings_commands(model):
    session = ChatSession(model)
    assert session.command("/temperature 0.7") == "temperature=0.7"
    assert session.command("/top_k 40") == "top_k=40"
    assert session.command("/top_p 0.9") == "top_p=0.9"
    assert session.command("/max_tokens 12") == "max_tokens=12"
    assert session.settings == Settings(temperature=0.7, top_k=40, top_p=0.9, max_tokens=12)
    assert session.command("/top_k off") == "top_k=off"
    assert session.command("/temperature") == "temperature=0.7"
    assert "top_k=off" in session.command("/settings")
    assert session.command("/temperature -1").startswith("error: temperature must be >= 0")
    assert session.command("/top_p 2").startswith("error: top_p must be a number in (0, 1]")
    assert session.command("/max_tokens many") == "error: max_tokens takes an integer"
    assert session.settings.temperature == 0.7  # unchanged by the errors
    assert session.command("/nope").startswith("unknown command /nope")
    assert "/reset" in session.command("/help")
    assert session.command("/exit") is None and session.command("/quit") is None


def test_reset_and_seeded_sampling(model):
    a = ChatSession(model, Settings(temperature=1.0, seed=5))
    b = ChatSession(model, Settings(temperature=1.0, seed=5))
    first = ["".join(s.reply("What causes rain?")) for s in (a, b)]
    assert first[0] == first[1] and len(a.turns) == 1
    assert a.command("/reset") == "(conversation forgotten)" and a.turns == []


def test_a_model_without_tokenizer_cannot_chat():
    with pytest.raises(InputError, match="no tokenizer"):
        ChatSession(Model(ModelConfig(vocab_size=10)))
