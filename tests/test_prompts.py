"""Prompts and answer text (prompts.py): the prompt check, the tokenizer guard, the one policy
for a context that does not fit, and text released as soon as it is final."""

import pytest

from scratchlm import Model, ModelConfig
from scratchlm.errors import InputError
from scratchlm.prompts import (
    MAX_PROMPT_CHARS,
    TextStream,
    check_prompt_text,
    conversation_ids,
    fit,
    require_tokenizer,
)
from scratchlm.tokenizers import BPETokenizer, WordTokenizer


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the prompt is empty"),
        ("  \n\t ", "the prompt is empty"),
        ("x" * (MAX_PROMPT_CHARS + 1), "the prompt has 10,001 characters; the limit is 10,000"),
        (
            "bad \udc80 byte",
            r"the prompt is not valid Unicode: a lone surrogate \(\\udc80\) at character 4",
        ),
    ],
    ids=["empty", "blank", "long", "not-unicode"],
)
def test_a_prompt_that_is_empty_too_long_or_not_unicode_is_refused(text, message):
    with pytest.raises(InputError, match=message):
        check_prompt_text(text)


@pytest.mark.parametrize("text", ["Why?", "naïve café — 東京 😀", "x" * MAX_PROMPT_CHARS])
def test_a_good_prompt_comes_back_as_it_is(text):
    assert check_prompt_text(text) is text


def test_a_model_without_a_tokenizer_is_named():
    with pytest.raises(InputError, match="m.safetensors has no tokenizer, so it cannot read"):
        require_tokenizer(Model(ModelConfig(vocab_size=5)), "m.safetensors")


@pytest.mark.parametrize(
    ("n", "window", "room", "kept"),
    [(5, 10, 3, 5), (8, 10, 3, 7), (20, 10, 3, 7), (20, 10, 50, 5), (20, 10, 0, 10), (0, 10, 3, 0)],
    ids=["fits", "over-by-one", "long", "room-capped-at-half", "no-room", "empty"],
)
def test_fit_keeps_the_most_recent_tokens_that_leave_the_room(n, window, room, kept):
    ids = list(range(n))
    assert fit(ids, window, room) == ids[n - kept :]


def conversation_tokenizer():
    words = [
        "User:",
        "Assistant:",
        "what",
        "is",
        "the",
        "sky",
        "sea",
        "grass",
        "blue",
        "green",
        "big",
        "?",
        ".",
    ]
    return WordTokenizer.build([" ".join(words)])


def test_a_conversation_drops_whole_oldest_turns_first():
    tok = conversation_tokenizer()
    messages = [
        ("user", "what is the sky ?"),
        ("assistant", "the sky is blue ."),
        ("user", "what is the sea ?"),
        ("assistant", "the sea is big ."),
        ("user", "what is the grass ?"),
    ]
    whole = len(
        tok.encode(
            "User: what is the sky ? Assistant: the sky is blue . User: what is the sea ? Assistant: the sea is big . User: what is the grass ? Assistant:"
        )
    )
    ids, dropped = conversation_ids(tok, messages, window=whole + 4, room=4)
    assert dropped == 0 and len(ids) == whole  # it fits with room for 4 answer tokens
    ids, dropped = conversation_ids(tok, messages, window=whole, room=4)
    assert dropped == 2  # a whole turn, question and answer, and no more
    assert tok.decode(ids).startswith("User: what is the sea?")
    ids, dropped = conversation_ids(tok, messages, window=12, room=6)
    assert dropped == 4 and len(ids) == 6  # the last turn alone is too long: cut at its start
    assert tok.decode(ids).endswith("grass? Assistant:")


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
