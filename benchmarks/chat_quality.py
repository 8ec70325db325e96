"""Trains the demo configuration (`scratchlm run`, what `make demo` does) with several seeds and
prints how well each model answers, on data it never trained on.

    python benchmarks/chat_quality.py [--seeds 0 1 2] [--variant demo] [--keep DIR]

Per seed, then their mean:

    seed=0 train_exact=... val_exact=... val_loss=... train_s=... cpu_s=...
    seed=0 chat form=... other_direction=... out_of_scope=... wrapped=... follow_up=...
        small_talk=... known_dont_know=... val_chat=... precision=... recall=...
    seed=0 raw form=... (the same questions as typed, no threshold)
    seed=0 calibrated min_confidence=... form=... (the threshold chosen on data/calibration)
    seed=0 conv_history=... conv_alone=... chain_history=... chain_alone=...

The first line is the model alone: exact answers on (500 of) the training chat set and on the
held-out chat_val.json, the held-out loss (counted as the chat phase counts its training loss),
train_s the wall time of the whole `train_examples` call and cpu_s this process's CPU time in it.

`chat` answers as `scratchlm chat` does (evaluate.chat_answers: corrected words, "I don't know"
below confidence.DEFAULT_MIN_CONFIDENCE): the share right in each category of data/hard (right:
the expected answer, or "I don't know" where that is the honest one), the share of questions with
a known answer that got "I don't know" (known_dont_know), chat_val.json answered the same way
(val_chat), and how well the threshold picks out the model's wrong answers on data/hard
(precision: the share of withheld answers that were wrong; recall: the share of wrong answers
withheld). `raw` is the same without corrections or threshold: what the robust input and the
threshold add. `calibrated` chooses the threshold on data/calibration for this model
(commands/eval.py calibrate: the most right answers while at most 4% of the questions with a known
answer get "I don't know") and scores data/hard with it; after the seeds, `pooled` is the threshold
chosen on the calibration answers of all the seeds' models together (the demo's default,
confidence.DEFAULT_MIN_CONFIDENCE). `--keep DIR` keeps the trained models.

`--variant` trains the demo with one of its choices undone, to measure what that choice gives:
no-dropout (chat dropout 0), full-loss (the chat loss on every token, questions too), batch-32
(chat batches of 32 at the pre-training lr 2e-3), no-weight-decay (0 instead of 0.1 in both
phases), heads-8 (8 attention heads of 8 instead of 4 of 16), word (the seed's case-keeping word
tokenizer instead of the caseless one), bpe (byte-level BPE of 4,096 tokens), all-words (every
word of the training texts in the vocabulary, none read as `<unk>`), chat-12-epochs (the chat
phase's 12 epochs of before the chat set grew, instead of 10).

The history line measures chat history (`ChatSession(history=...)`, the model's own answers as
the earlier turns): the held-out conversations asked turn by turn with history on (conv_history)
and their last question alone (conv_alone), and CHAIN one-turn held-out questions asked one after
another in one session with history on (chain_history) against each alone (chain_alone), and each
small-talk message of data/hard asked after a one-turn held-out question (small_talk_after: "ok
cool" after an answer).
"""

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np

from scratchlm.chat import ChatSession
from scratchlm.chat_format import turns
from scratchlm.commands.eval import calibrate
from scratchlm.confidence import DEFAULT_MIN_CONFIDENCE, choose_threshold
from scratchlm.evaluate import (
    abstention,
    as_decoded,
    category_scores,
    chat_answers,
    exact_answer_score,
    examples_loss,
    load_categories,
    same_answer,
)
from scratchlm.examples import load_examples
from scratchlm.train import demo_options, train_examples

FIELDS = ("train_exact", "val_exact", "val_loss", "train_s", "cpu_s")
CATEGORIES = ("form", "other_direction", "out_of_scope", "wrapped", "follow_up", "small_talk")
CHAT = (*CATEGORIES, "known_dont_know", "val_chat", "precision", "recall")
HISTORY = ("conv_history", "conv_alone", "chain_history", "chain_alone", "small_talk_after")
CHAIN = 40
VARIANTS = (
    "demo",
    "no-dropout",
    "full-loss",
    "batch-32",
    "no-weight-decay",
    "heads-8",
    "word",
    "bpe",
    "all-words",
    "chat-12-epochs",
)


def undo_choice(opts, variant: str) -> None:
    """`opts` (the demo's RunOptions) with the choice named by `variant` undone, in place."""
    chat = opts.phases[-1]
    if variant == "no-dropout":
        chat.train.dropout = 0.0
    elif variant == "full-loss":
        chat.assistant_only = False
    elif variant == "batch-32":
        chat.train.batch_size, chat.train.lr = 32, 2e-3
    elif variant == "no-weight-decay":
        for phase in opts.phases:
            phase.train.weight_decay = 0.0
    elif variant == "heads-8":
        opts.model["n_heads"] = 8
    elif variant in ("word", "bpe"):
        opts.tokenizer, opts.vocab_size = variant, None
    elif variant == "all-words":
        opts.vocab_size = None
    elif variant == "chat-12-epochs":  # the demo's chat phase before the chat set grew
        chat.train.epochs = 12


def run(seed: int, out_dir: Path, variant: str = "demo") -> dict:
    opts = demo_options(Path(f"{out_dir}_seed{seed}.safetensors"), seed=seed)
    undo_choice(opts, variant)
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # the demo's own report
        model = train_examples(opts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    chat = [t for f in opts.phases[-1].files for t in load_examples(f)]
    val = load_examples(opts.val)
    data = opts.val.parent
    return {
        "train_exact": exact_answer_score(model, chat[:: max(1, len(chat) // 500)][:500])[0],
        "val_exact": exact_answer_score(model, val)[0],
        "val_loss": examples_loss(model, val, opts.phases[-1].assistant_only),
        "train_s": wall,
        "cpu_s": cpu,
        **chat_scores(model, load_categories(data / "hard"), val, True, DEFAULT_MIN_CONFIDENCE),
        **prefixed("raw_", chat_scores(model, load_categories(data / "hard"), val, False, None)),
        **calibrated(model, load_categories(data / "calibration"), load_categories(data / "hard")),
        **history_scores(
            model, [turns(t) for t in val], load_examples(data / "hard/small_talk.json")
        ),
    }


def chat_scores(model, hard: dict, val: list[str], correct: bool, threshold) -> dict:
    got = {k: chat_answers(model, v, correct, threshold) for k, v in hard.items()}
    scores = category_scores(model, got)
    scores["val_chat"] = float(
        np.mean([a.right for a in chat_answers(model, val, correct, threshold)])
    )
    withheld = abstention(model, [a for v in got.values() for a in v], threshold or 0.0)
    return {**scores, "precision": withheld["precision"], "recall": withheld["recall"]}


def calibrated(model, calibration: dict, hard: dict) -> dict:
    facts = []  # what choose_threshold reads, per calibration answer: kept for the pooled choice
    threshold = calibrate(
        model, calibration, True, lambda *a: facts.append(a) or choose_threshold(*a)
    )
    got = {k: chat_answers(model, v, True, threshold) for k, v in hard.items()}
    withheld = abstention(model, [a for v in got.values() for a in v], threshold)
    scores = {**category_scores(model, got), **withheld, "min_confidence": threshold}
    return {**prefixed("cal_", scores), "calibration": facts[0]}


def prefixed(prefix: str, d: dict) -> dict:
    return {prefix + k: v for k, v in d.items()}


def session_score(model, questions: list[str], expected: list[str], history: bool) -> list[bool]:
    """Ask `questions` in turn in one greedy session -> whether each answer is `expected`."""
    session = ChatSession(model, history=history)
    got = ["".join(session.reply(q)) for q in questions]
    return [
        same_answer(g, as_decoded(model.tokenizer, e)) for g, e in zip(got, expected, strict=True)
    ]


def history_scores(
    model, conversations: list[list[tuple[str, str]]], small_talk: list[str]
) -> dict:
    multi = [c for c in conversations if len(c) > 1]
    single = [c[0] for c in conversations if len(c) == 1]
    chain = single[:: max(1, len(single) // CHAIN)][:CHAIN]
    # each held-out small-talk message after a held-out question, as people say "ok cool"
    firsts = single[:: max(1, len(single) // len(small_talk))][: len(small_talk)]
    after = zip(firsts, map(turns, small_talk), strict=True)
    small_talk_after = [
        session_score(model, [f[0], q], [f[1], a], True)[-1] for f, ((q, a),) in after
    ]
    last = lambda history: np.mean(  # noqa: E731
        [session_score(model, [q for q, _ in c], [a for _, a in c], history)[-1] for c in multi]
    )
    questions, answers = [q for q, _ in chain], [a for _, a in chain]
    return {
        "conv_history": last(True),
        "conv_alone": last(False),
        "chain_history": np.mean(session_score(model, questions, answers, True)),
        "chain_alone": np.mean(session_score(model, questions, answers, False)),
        "small_talk_after": np.mean(small_talk_after),
    }


def line(label: str, r: dict, fields, prefix: str = "") -> str:
    values = [(k, r[prefix + k]) for k in fields if prefix + k in r]
    return f"{label} " + " ".join(
        f"{k}={v:.1f}" if k.endswith("_s") else f"{k}={v:.4f}" for k, v in values
    )


def report(label: str, r: dict) -> list[str]:
    cal = ("min_confidence", *CATEGORIES, "known_dont_know", "precision", "recall")
    return [
        line(label, r, FIELDS),
        line(f"{label} chat", r, CHAT),
        line(f"{label} raw", r, (*CATEGORIES, "known_dont_know", "val_chat"), "raw_"),
        line(f"{label} calibrated", r, cal, "cal_"),
        line(label, r, HISTORY),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variant", choices=VARIANTS, default="demo")
    ap.add_argument("--keep", type=Path, help="a folder to keep the trained models in")
    args = ap.parse_args()
    label = "" if args.variant == "demo" else f"variant={args.variant} "
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            results.append(run(seed, folder / args.variant, args.variant))
            print("\n".join(report(f"{label}seed={seed}", results[-1])), flush=True)
    facts = [r.pop("calibration") for r in results]  # per seed: the 4 lists choose_threshold reads
    pooled = [sum((list(f[i]) for f in facts), []) for i in range(4)]
    print(f"{label}pooled min_confidence={choose_threshold(*pooled):.4f}")
    mean = {k: float(np.mean([r[k] for r in results])) for k in results[0]}
    print("\n".join(report(f"{label}mean", mean)))
    spread = {k: float(np.std([r[k] for r in results])) for k in results[0]}
    print("\n".join(report(f"{label}std", spread)[1:4]))


if __name__ == "__main__":
    main()
