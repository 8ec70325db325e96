# Part 5 into the shipped chat set (run from datagen/ after the fresh data/hard/small_talk.json is
# in place): the shipped set plus newtrain5.build(), under assemble.py's rule for small talk
# applied to the old examples too: no training example asks (normalised, in any turn) a
# small-talk question of data/hard or data/calibration, nor any question of chat_val.json (the
# other categories' rules were applied when assemble.py wrote the set; part 5 adds only small talk); a first question keeps the
# one answer it already had (conflicting new examples are dropped and printed); duplicates go.
import json
import string
import subprocess
import sys
from pathlib import Path

import newtrain5

from scratchlm import chat_format
from scratchlm.evaluate import load_categories
from scratchlm.tokenizers import WordTokenizer

BUNDLED = Path(__file__).resolve().parents[1] / "src/scratchlm/bundled"


def norm(text):
    text = text.lower().translate(str.maketrans(string.punctuation, " " * len(string.punctuation)))
    return " ".join(text.split())


def questions(example):
    return [norm(q) for q, _ in chat_format.turns(example)]


held = [x for d in ("hard", "calibration") for x in load_categories(BUNDLED / d)["small_talk"]]
held += json.loads((BUNDLED / "chat_val.json").read_text())
forbid = {q for x in held for q in questions(x)}
# the set as it was shipped before part 5
BEFORE = "72d2e44:src/scratchlm/bundled/chat.json"
shipped = json.loads(
    subprocess.run(["git", "show", BEFORE], capture_output=True, check=True).stdout
)
new = newtrain5.build(shipped)
answer = {}  # first question -> its answer in the shipped set
for x in shipped:
    (q, a), *_ = chat_format.turns(x)
    answer.setdefault(norm(q), a)
out, report = [], {"asks a held-out question": [], "conflicts": []}
for x in dict.fromkeys(shipped + new):
    (q, a), *_ = chat_format.turns(x)
    if any(q2 in forbid for q2 in questions(x)):
        report["asks a held-out question"].append(x)
    elif answer.setdefault(norm(q), a) != a:
        report["conflicts"].append(x)
    else:
        out.append(x)
for why, xs in report.items():
    print(why, len(xs))
    for x in xs:
        print("   ", x[:110])
tok = WordTokenizer.build(json.loads((BUNDLED / "pretrain.json").read_text()) + out)
long = [x for x in out if len(tok.encode(x)) > 80]  # the demo's context
out = [x for x in out if x not in long]
print(
    "too long (new ones)",
    sum(x not in shipped for x in long),
    "of",
    len(long),
    "shipped",
    len(shipped),
    "new",
    len(new),
    "out",
    len(out),
)
if sys.argv[1:] == ["write"]:
    (BUNDLED / "chat.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print("wrote", len(out))
