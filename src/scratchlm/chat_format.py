"""The chat template, in one place: how a conversation becomes the text a model trains on and
continues, and how an answer is read back out of it.

    User: <question> Assistant: <answer> User: <follow-up> Assistant: <answer> </s>

Training examples are whole conversations ending in `</s>`; a prompt is a conversation that ends
right after the last "Assistant:", for the model to write the answer. Used by the data loaders
(`.jsonl` chats), the chat session, evaluation and the server. Not handled: system prompts, other
roles, other templates.
"""

import re

from .tokenizers.base import EOS

USER, ASSISTANT = "User:", "Assistant:"
ROLES = {"user": USER, "assistant": ASSISTANT}  # message role -> its marker in the text
_MARKER = re.compile(rf"({re.escape(USER)}|{re.escape(ASSISTANT)})")


def render(messages: list[tuple[str, str]]) -> str:
    """(role, content) pairs, role "user" or "assistant" -> "User: ... Assistant: ..." (no `</s>`)."""
    return " ".join(f"{ROLES[role]} {content.strip()}" for role, content in messages)


def prompt(turns: list[tuple[str, str]], question: str) -> str:
    """Earlier (question, answer) turns and a new question -> the text the model continues."""
    return reply_prompt(messages(turns, question))


def messages(turns: list[tuple[str, str]], question: str) -> list[tuple[str, str]]:
    """Earlier (question, answer) turns and a new question -> (role, content) messages."""
    past = [(role, text) for q, a in turns for role, text in (("user", q), ("assistant", a))]
    return [*past, ("user", question)]


def reply_prompt(messages: list[tuple[str, str]]) -> str:
    """(role, content) pairs ending with the user's -> the text the model continues with a reply."""
    return render(messages) + f" {ASSISTANT}"


def split_answer(example: str) -> tuple[str, str]:
    """A chat example -> (its prompt, ending in the LAST "Assistant:", and the answer that follows
    it without `</s>`). A text without the marker is all prompt."""
    k = example.rfind(ASSISTANT)
    if k < 0:
        return example, ""
    end = k + len(ASSISTANT)
    return example[:end], example[end:].replace(EOS, "").strip()


def turns(example: str) -> list[tuple[str, str]]:
    """A chat example -> its (question, answer) turns, the inverse of `render` (a last question
    without an answer gets ""). Text before the first "User:" is dropped."""
    parts = _MARKER.split(example.replace(EOS, ""))[1:]  # marker, text, marker, text, ...
    out: list[tuple[str, str]] = []
    for marker, text in zip(parts[::2], parts[1::2], strict=True):
        if marker == USER:
            out.append((text.strip(), ""))
        elif out:
            out[-1] = (out[-1][0], text.strip())
    return out
