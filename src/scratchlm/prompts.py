"""Prompts and answer text, in one place: what every surface that reads a user's text and writes
the model's answer shares (the terminal chat, `generate`, `eval`, the server).

- `check_prompt_text`: a prompt is valid Unicode, not empty, at most MAX_PROMPT_CHARS characters;
- `require_tokenizer`: a model without a tokenizer cannot read or write text;
- `fit` and `conversation_ids`: THE policy for a context that does not fit the window (below);
- `TextStream`: token ids in, text out as soon as it is final.

The policy. A context that does not fit keeps its most recent tokens and leaves `room` for what
comes next, at most half the window. A prompt leaves room for its answer (`max_new_tokens`): the
prompt and its answer then fit the window together, as every training example did, and no answer
is written across a slide of the window. A conversation drops its oldest whole turns first, so that
what the model reads starts at a "User:", as in training; only a last turn too long on its own is
cut at its start. Decoding that fills the window (generate.py) follows the same rule with half the
window as its room: a rebuild then happens at most once every half window, and the model always
sees at least half a window of context.
"""

import os

from . import chat_format
from .checks import check_text
from .errors import InputError

MAX_PROMPT_CHARS = 10_000  # one prompt is at most 10,000 characters (docs/design.md)


def check_prompt_text(text: str, what: str = "the prompt") -> str:
    """`text` if it is valid Unicode, not blank and at most MAX_PROMPT_CHARS characters long;
    otherwise an InputError that names `what`."""
    check_text(text, what)
    if not text.strip():
        raise InputError(f"{what} is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"{what} has {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    return text


def require_tokenizer(model, what: str = "this model"):
    """The model's tokenizer; an InputError for a bare model (token ids only)."""
    if model.tokenizer is None:
        raise InputError(f"{what} has no tokenizer, so it cannot read or write text")
    return model.tokenizer


def fit(ids: list[int], window: int, room: int) -> list[int]:
    """The most recent of `ids` that leave `room` tokens of the window free (at most half)."""
    keep = window - min(room, window // 2)
    return ids if len(ids) <= keep else ids[-keep:]


def conversation_ids(tokenizer, messages, window: int, room: int) -> tuple[list[int], int]:
    """The prompt of a conversation, (role, text) messages ending with the user's, as token ids
    that fit the window with `room` for the answer (module docstring) -> (ids, how many of the
    first messages it leaves out)."""
    keep = window - min(room, window // 2)
    starts = [i for i, (role, _) in enumerate(messages) if role == "user"]  # where turns begin
    for first in starts:
        ids = tokenizer.encode(chat_format.reply_prompt(messages[first:]))
        if len(ids) <= keep:
            return ids, first
    return ids[-keep:], starts[-1]


class TextStream:
    """Token ids in, text out as soon as it is final.

    Detokenizing is context-dependent ("it ' s" becomes "it's" only once the "s" arrives; a BPE
    character may be split across tokens), so text is released only where adding the newest token
    did not change it: the common prefix of the texts with and without that token, short of any
    incomplete character at its end.
    """

    def __init__(self, tokenizer):
        self.decoder = tokenizer.decoder()  # the text of all ids so far, a token at a time
        self.text = ""  # the decoded text of all ids so far
        self.released = ""

    def push(self, token: int) -> str:
        """Add a token; returns the newly final text (often empty)."""
        before, self.text = self.text, self.decoder.push(token)
        # Most often the new text extends the old one: then it is the common prefix (tested in C,
        # where commonprefix compares character by character in Python).
        common = (
            before if self.text.startswith(before) else os.path.commonprefix([before, self.text])
        )
        # A trailing U+FFFD is a character whose bytes have not all arrived yet.
        return self._release(common.rstrip("\ufffd"))

    def flush(self) -> str:
        """The rest of the text, at the end of the answer."""
        return self._release(self.text)

    def _release(self, final: str) -> str:
        if len(final) <= len(self.released) or not final.startswith(self.released):
            return ""
        piece, self.released = final[len(self.released) :], final
        return piece
