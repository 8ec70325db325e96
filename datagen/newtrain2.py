# New training data, part 2: follow-ups of many shapes, and known questions wrapped in longer sentences.
import json
import random
from pathlib import Path

from keys import IDK, SMALL_TALK, A, conv, table

from scratchlm import chat_format

T = table("newtrain2")  # the literal tables: newtrain2.json


def capital_chains(rng, n):
    out = []
    for _ in range(n):
        (c1, k1), (c2, k2) = rng.sample(T.CAPITALS, 2)
        lc1, lc2 = c1.lower(), c2.lower()
        q1 = rng.choice(T.FIRST).format(c=c1, lc=lc1)
        q2 = rng.choice(T.SHAPES).format(c=c2, lc=lc2)
        out.append(conv(q1, k1, q2, k2))
    return out


# "Is X one?" after a category, with its answer
def member_chains(rng):
    out = []
    for _, k1, members, k2 in T.MEMBERS:
        first = next(f for f, kk, *_ in T.MEMBERS if kk == k1)
        for m in members:
            for shape in rng.sample(T.ONE, 3):
                q1 = rng.choice(T.FIRSTS[first])
                q2 = shape.format(m=m).replace("a Sun", "the Sun").replace("Suns", "the Sun")
                out.append(conv(q1, k1, q2, k2))
    return out


# "Why?" after an answer that holds its reason: the same answer; after one without a reason: I don't
# know. Then follow-ups about details it does not know, after a known answer.
def follow_ups(rng):
    out = capital_chains(rng, 70) + member_chains(rng)
    for q, k in T.WHY_KNOWN:
        out.append(conv(q, k, rng.choice(T.WHY), k))
    for q, k in T.WHY_UNKNOWN:
        out.append(conv(q, k, rng.choice(T.WHY), "IDK"))
    for q, k, details in T.DETAIL:
        for d in details:
            out.append(conv(q, k, d, "IDK"))
    for q, k, _ in rng.sample(T.DETAIL, 12):
        out.append(conv(q, k, rng.choice(T.MORE), "IDK"))
    for chain in T.SUPERLATIVE_CHAINS:
        out.append(conv(*[x for pair in chain for x in pair]))
    return out


# Known questions inside longer sentences: hand-written ones, and training questions inside wrappers.
def wrapped(rng, n):
    train = [
        chat_format.turns(x)
        for x in json.loads(Path("/work/wt/chat/src/scratchlm/bundled/chat.json").read_text())
    ]
    pairs = [
        c[0]
        for c in train
        if len(c) == 1 and c[0][1] != IDK and c[0][0][:1].isupper() and c[0][0].endswith("?")
    ]
    small = {A(k) for k in SMALL_TALK}
    pairs = [p for p in pairs if p[1] not in small]
    out = [conv(q, k) for q, k in T.INDIRECT]
    for q, a in rng.sample(pairs, n):
        w = rng.choice(T.WRAPPERS)
        text = w.format(q=q, lq=q[0].lower() + q[1:])
        out.append(chat_format.render([("user", text), ("assistant", a)]) + " </s>")
    return out


def build(seed=21):
    rng = random.Random(seed)
    return follow_ups(rng) + wrapped(rng, 160)
