"""Trains the demo configuration (`scratchlm run`, what `make demo` does) with several seeds and
prints how well each model answers: the exact-answer score on the training chat set and on the
held-out file, the held-out loss, and the training time.

    python benchmarks/chat_quality.py [--seeds 0 1 2]

One line per seed, then their mean:

    seed=0 train_exact=0.9868 val_exact=0.7533 val_loss=0.6012 train_s=141.2 cpu_s=150.3

val_loss is counted as the demo's chat phase counts its training loss (on the answers alone when
it trains on them alone).

train_s is the wall time of the whole `train_examples` call (pre-training, instruction tuning, the
per-epoch held-out figures and the final scores, as `make demo`), cpu_s the CPU time of this
process during it (more than train_s when BLAS runs several threads).

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


def run(seed: int, out_dir: Path) -> dict:
    opts = demo_options(out_dir / f"seed{seed}.safetensors", seed=seed)
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
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            results.append(run(seed, Path(tmp)))
            print(line(f"seed={seed}", results[-1]), flush=True)
            print(line(f"seed={seed}", results[-1], HISTORY), flush=True)
    mean = {k: float(np.mean([r[k] for r in results])) for k in FIELDS + HISTORY}
    print(line("mean", mean))
    print(line("mean", mean, HISTORY))


if __name__ == "__main__":
    main()
