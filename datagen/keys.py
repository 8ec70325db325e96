"""Answer keys for writing data: A('substring') -> the one topic answer containing it."""

import json
from pathlib import Path
from types import SimpleNamespace

from scratchlm import chat_format

IDK = "I'm sorry, I don't know about that. I only know some facts about science, nature, history and the world."
NEW = [
    "Yes, whales are mammals, even though they live in the sea.",
    "Yes, a tomato is a fruit, because it holds the seeds of the plant.",
    "A penguin is a bird that cannot fly and uses its wings to swim.",
]
_d = json.loads(Path("/work/wt/chat/src/scratchlm/bundled/chat.json").read_text())
TOPICS = sorted(
    {chat_format.turns(x)[0][1] for x in _d if len(chat_format.turns(x)) == 1} | set(NEW)
)
BAD = []


def A(s):
    if s == "IDK":
        return IDK
    hits = [t for t in TOPICS if t.startswith(s)] or [t for t in TOPICS if s in t]
    if len(hits) != 1:
        BAD.append((s, hits))
        return "?"
    assert len(hits) == 1, (s, hits)
    return hits[0]


def conv(*pairs):
    """q1, k1, q2, k2, ... -> chat string"""
    msgs = []
    for q, k in zip(pairs[::2], pairs[1::2], strict=True):
        msgs += [("user", q), ("assistant", A(k))]
    return chat_format.render(msgs) + " </s>"


# The small-talk answers, by a piece of each (H: hello, HOW: how are you, T: thanks, B: bye, OK:
# an acknowledgement, W: what are you, N: your name, C: what can you do, BU: who built you).
SMALL_TALK = H, HOW, T, B, OK, W, N, C, BU = (
    "Hello! I am",
    "just a program",
    "You are welcome",
    "Goodbye!",
    "Great! Ask me",
    "a computer program that answers",
    "I do not have a name",
    "I can answer simple",
    "built from scratch",
)


def held_out(name):
    """The held-out split in `name`.json -> {category: [chat string]}. Each item is a question and
    the piece of its answer (out_of_scope: the question alone, answered IDK), or for follow_up
    the whole conversation q1, k1, q2, k2."""
    table = json.loads((Path(__file__).parent / f"{name}.json").read_text())
    return {
        cat: [conv(*x) if isinstance(x, list) else conv(x, "IDK") for x in items]
        for cat, items in table.items()
    }


def table(name):
    """The literal tables (lists of questions, answer keys, templates) of the script `name`, kept
    in `name`.json beside it: `table("newtrain2").CAPITALS`."""
    return SimpleNamespace(**json.loads((Path(__file__).parent / f"{name}.json").read_text()))
