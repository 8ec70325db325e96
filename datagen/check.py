import importlib
import json
import string
import sys
from pathlib import Path

sys.path.insert(0, "/tmp/chatx")
from scratchlm import chat_format


def norm(t):
    t = t.lower().translate(str.maketrans(string.punctuation, " " * len(string.punctuation)))
    return " ".join(t.split())


B = "/work/wt/chat/src/scratchlm/bundled/"
train = [chat_format.turns(x) for x in json.loads(Path(B + "chat.json").read_text())]
pre = json.loads(Path(B + "pretrain.json").read_text())
seen = {norm(q) for c in train for q, _ in c} | {norm(p.replace("</s>", "")) for p in pre}
verbatim = {q for c in train for q, _ in c}
prefixes = {tuple(norm(q) for q, _ in c[: i + 1]) for c in train for i in range(len(c))}
bad = 0
for modname in sys.argv[1:]:
    d = importlib.import_module(modname).build()
    for cat, ex in d.items():
        for x in ex:
            t = chat_format.turns(x)
            q = t[-1][0]
            if cat == "form":
                hit = q in verbatim
            elif cat == "follow_up":
                hit = tuple(norm(a) for a, _ in t) in prefixes
            else:
                hit = norm(q) in seen
            if hit:
                print(modname, cat, t)
                bad += 1
print("bad", bad)
