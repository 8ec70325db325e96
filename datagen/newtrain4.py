# New training data, part 4 (after the second measurement): every fact asked from its other end in
# several wordings (as every topic is asked in five or more), wrapped questions around phrases that
# are not the question ("I don't know", "I forgot"), and more follow-ups whose answer is unknown.
import random

from keys import SMALL_TALK, A, conv, table

T = table("newtrain4")  # the literal tables: newtrain4.json


def reversed_facts(rng, per=5):
    out = []
    for p, k, v in T.PEOPLE:
        out += [conv(t.format(p=p, v=v), k) for t in rng.sample(T.P_TEMPLATES, per)]
    for c, _country in T.CITIES:
        name = A(c).split(" is ")[0]
        out += [conv(t.format(c=name), c) for t in rng.sample(T.C_TEMPLATES, per)]
    for y, k in T.YEARS:
        out += [conv(t.format(y=y), k) for t in rng.sample(T.Y_TEMPLATES, per)]
    for t_, k in T.THINGS:
        out += [conv(t.format(t=t_), k) for t in rng.sample(T.T_TEMPLATES, 4)]
    return [x.replace("Who is Galileo?", "Who was Galileo?") for x in out]


def wrapped(rng, n):
    import json
    from pathlib import Path

    from scratchlm import chat_format

    train = [
        chat_format.turns(x) for x in json.loads(Path("/tmp/chatx/chat_orig.json").read_text())
    ]
    small = {A(k) for k in (*SMALL_TALK, "IDK")}
    pairs = [
        c[0]
        for c in train
        if len(c) == 1 and c[0][1] not in small and c[0][0][:1].isupper() and c[0][0].endswith("?")
    ]
    out = []
    for q, a in rng.sample(pairs, n):
        w = rng.choice(T.DISTRACT)
        out.append(
            chat_format.render([("user", w.format(q=q, lq=q[0].lower() + q[1:])), ("assistant", a)])
            + " </s>"
        )
    return out


def unknown_follow_ups(rng, n):
    return [
        conv(q, k, rng.choice(T.UNKNOWN_Q), "IDK")
        for q, k in (rng.choice(T.UNKNOWN_AFTER) for _ in range(n))
    ]


def build(seed=4):
    rng = random.Random(seed)
    return reversed_facts(rng) + wrapped(rng, 90) + unknown_follow_ups(rng, 40)
