"""Trains the demo configuration (`scratchlm run`, what `make demo` does) with several seeds and
prints how well each model answers: the exact-answer score on the training chat set and on the
held-out file, the held-out loss, and the training time.

    python benchmarks/chat_quality.py [--seeds 0 1 2] [--variant demo]

One line per seed, then their mean:

    seed=0 train_exact=0.9961 val_exact=0.9101 val_loss=0.0261 train_s=88.5 cpu_s=131.6

val_loss is counted as the demo's chat phase counts its training loss (on the answers alone when
it trains on them alone).

train_s is the wall time of the whole `train_examples` call (pre-training, instruction tuning, the
per-epoch held-out figures and the final scores, as `make demo`), cpu_s the CPU time of this
process during it (more than train_s when BLAS runs several threads).

`--variant` trains the demo with one of its choices undone, to measure what that choice gives:
no-dropout (chat dropout 0), full-loss (the chat loss on every token, questions too), batch-32
(chat batches of 32 at the pre-training lr 2e-3), no-weight-decay (0 instead of 0.1 in both
phases), heads-8 (8 attention heads of 8 instead of 4 of 16).

A second line per seed measures chat history (`ChatSession(history=...)`, the model's own answers
as the earlier turns): the held-out conversations asked turn by turn with history on
(conv_history) and their last question alone (conv_alone), and CHAIN one-turn held-out questions
asked one after another in one session with history on (chain_history) against each alone
(chain_alone): the fraction of last answers, and of chained answers, that are exact.
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
from scratchlm.evaluate import as_decoded, exact_answer_score, examples_loss, same_answer
from scratchlm.examples import load_examples
from scratchlm.train import demo_options, train_examples

FIELDS = ("train_exact", "val_exact", "val_loss", "train_s", "cpu_s")
HISTORY = ("conv_history", "conv_alone", "chain_history", "chain_alone")
CHAIN = 40


VARIANTS = ("demo", "no-dropout", "full-loss", "batch-32", "no-weight-decay", "heads-8")


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


def run(seed: int, out_dir: Path, variant: str = "demo") -> dict:
    opts = demo_options(out_dir / f"seed{seed}.safetensors", seed=seed)
    undo_choice(opts, variant)
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # the demo's own report
        model = train_examples(opts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    chat = [t for f in opts.phases[-1].files for t in load_examples(f)]
    val = load_examples(opts.val)
    return {
        "train_exact": exact_answer_score(model, chat)[0],
        "val_exact": exact_answer_score(model, val)[0],
        "val_loss": examples_loss(model, val, opts.phases[-1].assistant_only),
        "train_s": wall,
        "cpu_s": cpu,
        **history_scores(model, [turns(t) for t in val]),
    }


def session_score(model, questions: list[str], expected: list[str], history: bool) -> list[bool]:
    """Ask `questions` in turn in one greedy session -> whether each answer is `expected`."""
    session = ChatSession(model, history=history)
    got = ["".join(session.reply(q)) for q in questions]
    return [
        same_answer(g, as_decoded(model.tokenizer, e)) for g, e in zip(got, expected, strict=True)
    ]


def history_scores(model, conversations: list[list[tuple[str, str]]]) -> dict:
    multi = [c for c in conversations if len(c) > 1]
    single = [c[0] for c in conversations if len(c) == 1]
    chain = single[:: max(1, len(single) // CHAIN)][:CHAIN]
    last = lambda history: np.mean(  # noqa: E731
        [session_score(model, [q for q, _ in c], [a for _, a in c], history)[-1] for c in multi]
    )
    questions, answers = [q for q, _ in chain], [a for _, a in chain]
    return {
        "conv_history": last(True),
        "conv_alone": last(False),
        "chain_history": np.mean(session_score(model, questions, answers, True)),
        "chain_alone": np.mean(session_score(model, questions, answers, False)),
    }


def line(label: str, r: dict, fields=FIELDS) -> str:
    return f"{label} " + " ".join(
        f"{k}={r[k]:.1f}" if k.endswith("_s") else f"{k}={r[k]:.4f}" for k in fields
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variant", choices=VARIANTS, default="demo")
    args = ap.parse_args()
    label = "" if args.variant == "demo" else f"variant={args.variant} "
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            results.append(run(seed, Path(tmp), args.variant))
            print(line(f"{label}seed={seed}", results[-1]), flush=True)
            print(line(f"{label}seed={seed}", results[-1], HISTORY), flush=True)
    mean = {k: float(np.mean([r[k] for r in results])) for k in FIELDS + HISTORY}
    print(line(f"{label}mean", mean))
    print(line(f"{label}mean", mean, HISTORY))


if __name__ == "__main__":
    main()
