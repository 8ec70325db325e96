import json
import string
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, "/tmp/chatx")
import newtrain1
import newtrain2
import newtrain3
import newtrain4

from scratchlm import chat_format
from scratchlm.evaluate import load_categories
from scratchlm.tokenizers import WordTokenizer

B = "/work/wt/chat/src/scratchlm/bundled/"


def norm(t):
    t = t.lower().translate(str.maketrans(string.punctuation, " " * len(string.punctuation)))
    return " ".join(t.split())


old = json.loads(Path(B + "chat.json").read_text())
orig = json.loads(Path("/tmp/chatx/chat_orig.json").read_text()) if len(sys.argv) > 1 else old
new = newtrain1.build() + newtrain2.build() + newtrain3.build() + newtrain4.build()

held = {
    **{("test", k): v for k, v in load_categories(B + "hard").items()},
    **{("calib", k): v for k, v in load_categories(B + "calibration").items()},
}
val = json.loads(Path(B + "chat_val.json").read_text())
# keys the held-out sets forbid in training
forbid_q, forbid_follow, forbid_verbatim = set(), set(), set()
for (_split, cat), exs in held.items():
    for x in exs:
        t = chat_format.turns(x)
        if cat == "form":
            forbid_verbatim.add(t[-1][0])
        elif cat == "follow_up":
            forbid_follow.add((norm(t[-1][0]), t[-2][1]))
        else:
            forbid_q.add(norm(t[-1][0]))
for x in val:
    for q, _ in chat_format.turns(x):
        forbid_q.add(norm(q))
dropped = []
keep = []


def collides(x):
    t = chat_format.turns(x)
    bad = any(norm(q) in forbid_q or q in forbid_verbatim for q, _ in t)
    return bad or any((norm(t[i][0]), t[i - 1][1]) in forbid_follow for i in range(1, len(t)))


orig_dropped = [x for x in orig if collides(x)]
print("old examples dropped", len(orig_dropped))
orig = [x for x in orig if not collides(x)]
for x in new:
    t = chat_format.turns(x)
    bad = any(norm(q) in forbid_q or q in forbid_verbatim for q, _ in t)
    bad |= any((norm(t[i][0]), t[i - 1][1]) in forbid_follow for i in range(1, len(t)))
    (dropped if bad else keep).append(x)
# one answer per first question, consistent with the old data
first = defaultdict(set)
for x in orig + keep:
    t = chat_format.turns(x)
    first[norm(t[0][0])].add(t[0][1])
conflicts = {q: a for q, a in first.items() if len(a) > 1}
print("new", len(new), "kept", len(keep), "dropped", len(dropped))
for x in dropped:
    print("  DROP", x[:150])
for q, a in conflicts.items():
    print("  CONFLICT", q, a)
seen = set(orig)
dup = [x for x in keep if x in seen]
print("dups with old", len(dup))
keep = [x for x in dict.fromkeys(keep) if x not in seen]
out = orig + keep
pre = json.loads(Path(B + "pretrain.json").read_text())
tok = WordTokenizer.build(pre + out)
long = [x for x in out if len(tok.encode(x)) > 80]
print("too long", len(long), long[:3])
if len(sys.argv) > 1 and sys.argv[1] == "write" and not conflicts and not long:
    Path(B + "chat.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print("wrote", len(out))
