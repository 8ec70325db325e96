"""Interactive chat in the terminal: the loop behind `scratchlm chat` and `scratchlm run -i`.

The prompt is written in the template of the training data, `User: <question> Assistant:`, for the
model to continue; the answer streams to the terminal token by token. With /history on, the earlier
turns come first, one `User: <q> Assistant: <a>` each (as multi-turn chats in .jsonl data are
rendered), and when the conversation no longer fits the context window with room for an answer the
oldest turns are forgotten. History is off by default: a model trained on single-turn examples, like
the bundled chat set, answers far worse after earlier turns (measured: 4 of 40 bundled questions
exactly right in one conversation, 34 of 40 asked alone). Settings change between questions;
greedy decoding is the default. Line editing and input history come from `readline` where Python
has it.

Not handled here: saving conversations, multi-line input, system prompts.
"""

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from .errors import InputError
from .generate import check_options, generate_stream

MAX_PROMPT_CHARS = 10_000  # DESIGN.md section 3: one prompt is at most 10,000 characters
USER, ASSISTANT = "User:", "Assistant:"

HELP = """\
commands:
  /help               this list
  /reset              forget the conversation
  /temperature [T]    0 = greedy, always the most likely word (default); higher = more varied
  /top_k [N|off]      sample only among the N most likely tokens
  /top_p [P|off]      sample among the most likely tokens that together reach probability P
  /max_tokens [N]     the longest answer, in tokens
  /history [on|off]   show the model the earlier turns too (off: each question alone)
  /settings           show the current settings
  /exit               quit (Ctrl-D too); Ctrl-C stops an answer"""


@dataclass(frozen=True)
class Settings:
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    max_tokens: int = 64
    seed: int | None = None
    history: bool = False

    def check(self, model) -> "Settings":
        t, k, p = self.temperature, self.top_k, self.top_p
        check_options(model, self.max_tokens, t, k, p, 1, self.seed, None)
        return self

    def describe(self) -> str:
        return (
            f"temperature={self.temperature} top_k={_off(self.top_k)} top_p={_off(self.top_p)} "
            f"max_tokens={self.max_tokens} history={_off(self.history)}"
        )


def _off(value):
    if isinstance(value, bool):
        return "on" if value else "off"
    return "off" if value is None else value


def render(turns: list[tuple[str, str]], question: str) -> str:
    """The conversation as the model saw chats in training, ending where the answer begins."""
    past = [f"{USER} {q} {ASSISTANT} {a}" for q, a in turns]
    return " ".join([*past, f"{USER} {question} {ASSISTANT}"])


class TextStream:
    """Token ids in, text out as soon as it is final.

    Detokenizing is context-dependent ("it ' s" becomes "it's" only once the "s" arrives; a BPE
    character may be split across tokens), so text is released only where adding the newest token
    did not change it: the common prefix of the texts with and without that token, short of any
    incomplete character at its end.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""  # the decoded text of all ids so far
        self.released = ""

    def push(self, token: int) -> str:
        """Add a token; returns the newly final text (often empty)."""
        self.ids.append(token)
        before, self.text = self.text, self.tokenizer.decode(self.ids)
        # A trailing U+FFFD is a character whose bytes have not all arrived yet.
        return self._release(os.path.commonprefix([before, self.text]).rstrip("\ufffd"))

    def flush(self) -> str:
        """The rest of the text, at the end of the answer."""
        return self._release(self.text)

    def _release(self, final: str) -> str:
        if len(final) <= len(self.released) or not final.startswith(self.released):
            return ""
        piece, self.released = final[len(self.released) :], final
        return piece


class ChatSession:
    """A conversation with one model: its turns, its settings and its random generator."""

    def __init__(self, model, settings: Settings | None = None):
        if model.tokenizer is None:
            raise InputError("this model has no tokenizer, so it cannot read or write text")
        self.model = model
        self.settings = (settings or Settings()).check(model)
        self.turns: list[tuple[str, str]] = []
        self.rng = np.random.default_rng(self.settings.seed)

    def prompt_ids(self, question: str) -> list[int]:
        """The prompt's token ids. With history, the oldest turns are forgotten until it leaves
        room for an answer of max_tokens (at most half the context window)."""
        if not self.settings.history:
            return self.model.tokenizer.encode(render([], question))
        window = self.model.config.max_seq_len
        budget = window - min(self.settings.max_tokens, window // 2)
        while True:
            ids = self.model.tokenizer.encode(render(self.turns, question))
            if len(ids) <= budget or not self.turns:
                return ids
            self.turns.pop(0)

    def reply(self, question: str) -> Iterator[str]:
        """The answer's text as it streams; InputError at once for an empty or over-long question.
        The turn joins the conversation when the stream ends, also when it is cut short (Ctrl-C)."""
        question = question.strip()
        if not question:
            raise InputError("the question is empty")
        if len(question) > MAX_PROMPT_CHARS:
            raise InputError(
                f"your message has {len(question):,} characters; the limit is {MAX_PROMPT_CHARS:,}"
            )
        s = self.settings
        seed = int(self.rng.integers(2**63))  # a session seed makes every answer reproducible
        tokens = generate_stream(
            self.model,
            self.prompt_ids(question),
            s.max_tokens,
            s.temperature,
            s.top_k,
            s.top_p,
            seed,
        )
        return self._stream(question, tokens)

    def _stream(self, question, tokens):
        text = TextStream(self.model.tokenizer)
        try:
            for token in tokens:
                if piece := text.push(token):
                    yield piece
            if piece := text.flush():
                yield piece
        finally:
            self.turns.append((question, text.text.strip()))

    def command(self, line: str) -> str | None:
        """Run a /command; returns what to print, or None to quit."""
        name, _, arg = line.strip().partition(" ")
        name, arg = name.lower(), arg.strip()
        if name in ("/exit", "/quit"):
            return None
        if name == "/help":
            return HELP
        if name == "/reset":
            self.turns.clear()
            return "(conversation forgotten)"
        if name == "/settings":
            return self.settings.describe()
        field = name[1:]
        if field not in ("temperature", "top_k", "top_p", "max_tokens", "history"):
            return f"unknown command {name}; /help lists the commands"
        if not arg:
            return f"{field}={_off(getattr(self.settings, field))}"
        try:
            self.settings = replace(self.settings, **{field: _parse(field, arg)}).check(self.model)
        except InputError as e:
            return f"error: {e}"
        return f"{field}={_off(getattr(self.settings, field))}"


def _parse(field: str, arg: str):
    """The value typed after a setting's command: a number, 'off' for top_k and top_p, on/off for
    history."""
    if field == "history":
        if arg.lower() not in ("on", "off"):
            raise InputError("history takes on or off")
        return arg.lower() == "on"
    if field in ("top_k", "top_p") and arg.lower() in ("off", "none"):
        return None
    kind = int if field in ("top_k", "max_tokens") else float
    try:
        return kind(arg)
    except ValueError:
        raise InputError(f"{field} takes {'an integer' if kind is int else 'a number'}") from None


def _enable_line_editing() -> None:
    """Importing readline gives input() line editing and history, where Python has it."""
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401


def chat_loop(model, settings: Settings | None = None, name: str = "model") -> int:
    """Read questions from the terminal and stream the answers, until /exit or Ctrl-D."""
    session = ChatSession(model, settings)
    _enable_line_editing()
    cfg, tok = model.config, model.tokenizer
    print(
        f"scratchlm chat: {name} ({model.num_parameters:,} parameters, {tok.kind} tokenizer, "
        f"context {cfg.max_seq_len} tokens)\n"
        f"Ask a question. History is {_off(session.settings.history)} (/history); "
        "/help lists the commands; /exit or Ctrl-D quits."
    )
    while True:
        try:
            line = input(f"{USER} ").strip()
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:  # like a shell: Ctrl-C abandons the line
            print()
            continue
        if line.startswith("/"):
            message = session.command(line)
            if message is None:
                return 0
            print(message)
        elif line:
            _answer(session, line)


def _answer(session: ChatSession, question: str) -> None:
    try:
        pieces = session.reply(question)
    except InputError as e:  # the session goes on
        print(f"error: {e}")
        return
    sys.stdout.write(f"{ASSISTANT} ")
    try:
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stdout.write(" [stopped]")
    sys.stdout.write("\n")
