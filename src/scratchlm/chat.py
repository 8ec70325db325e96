"""Interactive chat in the terminal: the loop behind `scratchlm chat` and `scratchlm run -i`.

The prompt is written in the template of the training data, `User: <question> Assistant:`, for the
model to continue; the answer streams to the terminal token by token. With history on (the
default), the earlier turns come first, one `User: <q> Assistant: <a>` each (as multi-turn chats
are rendered), and when the conversation no longer fits the context window with room for an answer
the oldest turns are forgotten; /history off asks each question alone. The bundled chat set has
conversations with follow-ups ("Why?", "And Japan?") and conversations that change the subject, so
the demo model uses history where it helps and mostly ignores it where it does not (measured on
held-out data, see the README). Settings change between questions; greedy decoding is the
default. Line editing and input history come from `readline` where Python has it.

What the session does to a question and an answer, each shown and switchable:
- the question's unknown words are read as known ones (correct.py: "captial" -> "capital"); a
  note says which, and /correct off sends the words as typed;
- an answer whose confidence is below `min_confidence` (a `Sampling` setting, confidence.py) is
  replaced by "I don't know", with a note giving the confidence; /min_confidence off shows every
  answer. With a threshold the answer is judged whole before it is shown, so it is not streamed.

Ctrl-C abandons the line being typed or stops the answer being streamed, and nothing else: any
burst of presses, at any moment, leaves the session running (see `_CtrlC`); only /exit and Ctrl-D
end it. A question that is empty, too long or not valid Unicode (undecodable terminal bytes) gets
an `error:` line and the session goes on.

Not handled here: saving conversations, multi-line input, system prompts.
"""

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from . import chat_format
from .checks import check_text
from .confidence import DONT_KNOW, answer_logprobs, confidence
from .correct import InputCorrector
from .errors import InputError
from .generate import generate_stream
from .sampling import Sampling

MAX_PROMPT_CHARS = 10_000  # one prompt is at most 10,000 characters (docs/design.md)

HELP = """\
commands:
  /help               this list
  /reset              forget the conversation
  /temperature [T]    0 = greedy, always the most likely word (default); higher = more varied
  /top_k [N|off]      sample only among the N most likely tokens
  /top_p [P|off]      sample among the most likely tokens that together reach probability P
  /max_tokens [N]     the longest answer, in tokens
  /min_confidence [P|off]  "I don't know" instead of an answer the model is less sure of
  /correct [on|off]   read misspelt or unknown words as words the model knows
  /history [on|off]   show the model the earlier turns too (off: each question alone)
  /settings           show the current settings
  /exit               quit (Ctrl-D too); Ctrl-C stops an answer"""

# The sampling settings a command changes: /command -> the `Sampling` field.
SAMPLING_COMMANDS = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "max_tokens": "max_new_tokens",
    "min_confidence": "min_confidence",
}
SWITCHES = {"history", "correct"}  # the on/off settings of the session


def check_question(question: str) -> str:
    """The question stripped; InputError if it is empty, over the length limit or not Unicode."""
    question = check_text(question, "your message").strip()
    if not question:
        raise InputError("the question is empty")
    if len(question) > MAX_PROMPT_CHARS:
        raise InputError(
            f"your message has {len(question):,} characters; the limit is {MAX_PROMPT_CHARS:,}"
        )
    return question


def _off(value):
    if isinstance(value, bool):
        return "on" if value else "off"
    return "off" if value is None else value


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


class ChatSession:
    """A conversation with one model: its turns, its settings and its random generator."""

    def __init__(
        self,
        model,
        sampling: Sampling | None = None,
        history: bool = True,
        correct: bool = True,
        dont_know: str = DONT_KNOW,
    ):
        if model.tokenizer is None:
            raise InputError("this model has no tokenizer, so it cannot read or write text")
        self.model = model
        self.sampling = sampling or Sampling()
        if self.sampling.beam > 1:
            raise InputError("chat streams its answers, so it cannot use beam search")
        self.history, self.correct, self.dont_know = history, correct, dont_know
        self.corrector = InputCorrector(model.tokenizer)
        self.turns: list[tuple[str, str]] = []
        self.rng = np.random.default_rng(self.sampling.seed)
        # what the last reply did to the question (corrections) and to the answer (withheld)
        self.question_note: str | None = None
        self.answer_note: str | None = None

    def prompt_ids(self, question: str) -> list[int]:
        """The prompt's token ids. With history, the oldest turns are forgotten until it leaves
        room for an answer of max_new_tokens (at most half the context window)."""
        encode = self.model.tokenizer.encode
        if not self.history:
            return encode(chat_format.prompt([], question))
        window = self.model.config.max_seq_len
        budget = window - min(self.sampling.max_new_tokens, window // 2)
        while True:
            ids = encode(chat_format.prompt(self.turns, question))
            if len(ids) <= budget or not self.turns:
                return ids
            self.turns.pop(0)

    def reply(self, question: str) -> Iterator[str]:
        """The answer's text as it streams; InputError at once for an empty or over-long question.
        The turn joins the conversation when the stream ends, also when it is cut short (Ctrl-C).
        `question_note` and `answer_note` say what was done to the question and the answer."""
        question = check_question(question)
        self.question_note = self.answer_note = None
        if self.correct:
            question, fixes = self.corrector.correct(question)
            if fixes:
                read = ", ".join(f"{f.typed} -> {f.read}" for f in fixes)
                self.question_note = f"(read {read}; /correct off sends the words as typed)"
        seed = int(self.rng.integers(2**63))  # a session seed makes every answer reproducible
        sampling = replace(self.sampling, seed=seed)
        prompt = self.prompt_ids(question)
        tokens = generate_stream(self.model, prompt, sampling)
        if sampling.min_confidence is None:
            return self._stream(question, tokens)
        return self._judged(question, prompt, tokens, sampling)

    def _judged(self, question, prompt, tokens, sampling):
        """The whole answer, or `dont_know` if its confidence is below `min_confidence`."""
        text, min_confidence = "", sampling.min_confidence
        try:
            answer = list(tokens)
            ended = len(answer) < sampling.max_new_tokens
            sure = confidence(answer_logprobs(self.model, [prompt], [answer], [ended])[0])
            text = self.model.tokenizer.decode(answer).strip()
            if sure < min_confidence:
                text = self.dont_know
                self.answer_note = (
                    f"(the model's answer had confidence {sure:.2f}, below min_confidence "
                    f"{min_confidence}; /min_confidence off shows it)"
                )
            yield text
        finally:
            self.turns.append((question, text))

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

    def describe(self) -> str:
        s = self.sampling
        return (
            f"temperature={s.temperature} top_k={_off(s.top_k)} top_p={_off(s.top_p)} "
            f"max_tokens={s.max_new_tokens} min_confidence={_off(s.min_confidence)} "
            f"history={_off(self.history)} correct={_off(self.correct)} "
            f"tokenizer={self.model.tokenizer.kind}"
        )

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
            return self.describe()
        command = name[1:]
        if command in SWITCHES:
            if arg and arg.lower() not in ("on", "off"):
                return f"error: {command} takes on or off"
            if arg:
                setattr(self, command, arg.lower() == "on")
            return f"{command}={_off(getattr(self, command))}"
        field = SAMPLING_COMMANDS.get(command)
        if field is None:
            return f"unknown command {name}; /help lists the commands"
        if arg:
            try:
                self.sampling = replace(self.sampling, **{field: _parse(command, arg)})
            except InputError as e:
                return f"error: {e}"
        return f"{command}={_off(getattr(self.sampling, field))}"


def _parse(command: str, arg: str):
    """The value typed after a setting's command: a number, or 'off' for top_k, top_p and
    min_confidence."""
    if command in ("top_k", "top_p", "min_confidence") and arg.lower() in ("off", "none"):
        return None
    kind = int if command in ("top_k", "max_tokens") else float
    try:
        return kind(arg)
    except ValueError:
        raise InputError(f"{command} takes {'an integer' if kind is int else 'a number'}") from None


def _enable_line_editing() -> None:
    """Importing readline gives input() line editing and history, where Python has it."""
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401


class _CtrlC:
    """Ctrl-C that interrupts only what the user waits for: reading a line, streaming an answer.

    Python's own handler raises KeyboardInterrupt wherever the program is, so the second press of a
    burst can land in the code handling the first (printing " [stopped]", closing the answer) and
    end the session with a traceback. This handler raises only inside `interruptible()`, and
    disarms itself before raising, so the code after an interruption runs to its end; presses
    outside are ignored. Installed for the main thread only (Python delivers signals there).
    """

    def __init__(self):
        self.armed = False

    def _on_sigint(self, signum, frame):
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextlib.contextmanager
    def interruptible(self):
        """A KeyboardInterrupt may come out of the block (and only from inside it)."""
        self.armed = True
        try:
            yield
        finally:
            self.armed = False


def chat_loop(model, session: ChatSession | None = None, name: str = "model") -> int:
    """Read questions from the terminal and stream the answers, until /exit or Ctrl-D."""
    session = session or ChatSession(model)
    ctrl_c = _CtrlC()
    with ctrl_c.installed():
        return _repl(model, session, name, ctrl_c)


def _repl(model, session: ChatSession, name: str, ctrl_c: _CtrlC) -> int:
    _enable_line_editing()
    cfg, tok = model.config, model.tokenizer
    print(
        f"scratchlm chat: {name} ({model.num_parameters:,} parameters, {tok.kind} tokenizer, "
        f"context {cfg.max_seq_len} tokens)\n"
        f"Ask a question. History is {_off(session.history)} (/history); "
        "/help lists the commands; /exit or Ctrl-D quits."
    )
    while True:
        try:
            with ctrl_c.interruptible():
                line = input(f"{chat_format.USER} ").strip()
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
            _answer(session, line, ctrl_c)


def _answer(session: ChatSession, question: str, ctrl_c: _CtrlC) -> None:
    pieces = None
    try:
        with ctrl_c.interruptible():
            pieces = session.reply(question)
            if session.question_note:
                print(session.question_note)
            sys.stdout.write(f"{chat_format.ASSISTANT} ")
            for piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
    except InputError as e:  # the session goes on
        print(f"error: {e}")
        return
    except KeyboardInterrupt:
        if pieces is not None:
            pieces.close()  # the part answered so far joins the conversation
        sys.stdout.write(" [stopped]")
    sys.stdout.write("\n")
    if session.answer_note:
        print(session.answer_note)
