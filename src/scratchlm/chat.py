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
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from . import chat_format
from .confidence import DONT_KNOW, answer_logprobs, confidence
from .correct import InputCorrector
from .errors import InputError
from .generate import generate_stream
from .prompts import TextStream, check_prompt_text, conversation_ids, require_tokenizer
from .sampling import Sampling, parse_setting, setting_name, settings

# The settings the chat has a /command for (`Sampling`'s, by the name users type) and its switches.
SAMPLING_COMMANDS = {setting_name(f): f for f in settings() if f.metadata["chat"]}
SWITCHES = {
    "correct": "read misspelt or unknown words as words the model knows",
    "history": "show the model the earlier turns too (off: each question alone)",
}


def _help() -> str:
    lines = [("/help", "this list"), ("/reset", "forget the conversation")]
    for name, f in SAMPLING_COMMANDS.items():
        value = (f.metadata["metavar"] or "N") + ("|off" if f.default is None else "")
        lines.append((f"/{name} [{value}]", f.metadata["help"]))
    lines += [(f"/{name} [on|off]", text) for name, text in SWITCHES.items()]
    lines += [("/settings", "show the current settings")]
    lines += [("/exit", "quit (Ctrl-D too); Ctrl-C stops an answer")]
    return "commands:\n" + "\n".join(f"  {cmd:<24} {text}" for cmd, text in lines)


HELP = _help()


def check_question(question: str) -> str:
    """The question stripped; InputError if it is empty, over the length limit or not Unicode."""
    return check_prompt_text(question, "your message").strip()


def _off(value):
    if isinstance(value, bool):
        return "on" if value else "off"
    return "off" if value is None else value


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
        require_tokenizer(model)
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
        room for an answer of max_new_tokens (prompts.py: the one policy for a context)."""
        past = self.turns if self.history else []
        messages = chat_format.messages(past, question)
        window, room = self.model.config.max_seq_len, self.sampling.max_new_tokens
        ids, dropped = conversation_ids(self.model.tokenizer, messages, window, room)
        if self.history:
            del self.turns[: dropped // 2]  # two messages a turn
        return ids

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
        values = {name: getattr(self.sampling, f.name) for name, f in SAMPLING_COMMANDS.items()}
        values |= {name: getattr(self, name) for name in ("history", "correct")}
        shown = " ".join(f"{name}={_off(value)}" for name, value in values.items())
        return f"{shown} tokenizer={self.model.tokenizer.kind}"

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
        f = SAMPLING_COMMANDS.get(command)
        if f is None:
            return f"unknown command {name}; /help lists the commands"
        if arg:
            try:
                self.sampling = replace(self.sampling, **{f.name: parse_setting(f, arg)})
            except InputError as e:
                return f"error: {e}"
        return f"{command}={_off(getattr(self.sampling, f.name))}"


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
