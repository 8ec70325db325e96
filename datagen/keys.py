"""Answer keys for writing data: A('substring') -> the one topic answer containing it."""

import json
from pathlib import Path

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
