"""Training and decoding speed of this checkout against an earlier commit, measured in one run.

    python benchmarks/against.py [--baseline 62f926a] [--rounds 3] [--updates 12]

The baseline commit is checked out into a temporary git worktree (removed at the end) and the same
probe runs on both trees, alternating, each case in a fresh process (the allocator setting is
per-process) with the tree's own `src/` on the path. The best of the rounds counts, so that a busy
moment of the machine does not. The cases:

    shakespeare_training the training tokens/s of the Tiny Shakespeare preset's shape with the
                         default parts (DyT, AdamW; batch 16 x 64) on the real corpus, as `Trainer.fit_corpus` reports them (window sampling
                         and updates, evaluation excluded) over `--steps` updates, with the command
                         line's allocator setting and thread count (a tree whose Trainer has no
                         `threads` runs one shard)
    shakespeare_update   one trainer update of that model alone, on a fixed random batch
    large_update         the same for the larger config of train_step.py (batch 8 x 256)
    large_library        `Model.loss_and_grads` alone on the larger config as a library caller
                         runs it: `import scratchlm`, nothing else (BLAS on its default threads)
    demo_decoding        `Model.generate` with the key/value cache, greedy: 192 new tokens after a
                         64-token prompt (the 80-token window slides) on the demo's model
    large_decoding       the same on the larger config

It prints tokens/s and ms per update or per generated sequence (median of `--updates` after two
warm-up calls; for the training case the mean over the run) for each tree, and the speed-up of
this checkout. The probe uses only what both trees have: `Model`, `ModelConfig`, `Model.generate`,
`Trainer(model, TrainConfig(...))`,
`Trainer.update(batches, lr)`, `Trainer.fit_corpus(corpus, seq_len, rng, eval_every)`,
`TokenCorpus.build`, `read_corpus`, `build_tokenizer` and the `Batch` named tuple (inputs, targets,
mask). The corpus (../shared/data/tinyshakespeare.txt or SCRATCHLM_SHAKESPEARE) is copied into a
temporary folder first, where each tree writes its token file.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = os.environ.get("SCRATCHLM_SHAKESPEARE", REPO.parent / "shared/data/tinyshakespeare.txt")
# The preset's shape (train.CORPUS_MODEL) with the default parts; the training case takes the
# vocabulary of the tree's char tokenizer (the corpus's 65 characters and the specials).
SHAKESPEARE = dict(
    vocab_size=68, d_model=128, n_heads=4, d_ff=512, depth=3, max_seq_len=64, cope_max_pos=16
)
LARGE = dict(vocab_size=4096, d_model=384, n_heads=6, d_ff=1024, depth=6, max_seq_len=256)
DEMO = dict(vocab_size=2041, n_heads=4)  # `make demo`'s model: the defaults, 4 heads

CASES = {  # name: (ModelConfig fields, batch, sequence length, kind)
    "shakespeare_training": (SHAKESPEARE, 16, 64, "training"),
    "shakespeare_update": (SHAKESPEARE, 16, 64, "update"),
    "large_update": (LARGE, 8, 256, "update"),
    "large_library": (LARGE, 8, 256, "library"),
    "demo_decoding": (DEMO, 1, 192, "decoding"),  # batch 1, 192 new tokens
    "large_decoding": (LARGE, 1, 192, "decoding"),
}

# Runs inside the tree under test; argv: case as JSON, number of timed updates, training steps,
# the corpus.
PROBE = r"""
import inspect, json, sys, time
import numpy as np
import scratchlm
from scratchlm import Model, ModelConfig
fields, batch, seq, kind = json.loads(sys.argv[1])
updates, steps, corpus_path = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if kind == "training":
    try:
        from scratchlm.corpus import TokenCorpus, read_corpus
    except ImportError:
        from scratchlm.data import TokenCorpus, read_corpus
    from scratchlm.tokenizers import build_tokenizer
    tokenizer = build_tokenizer("char", read_corpus(corpus_path))
    corpus = TokenCorpus.build(corpus_path, tokenizer)
    fields["vocab_size"] = tokenizer.vocab_size  # the corpus's characters and the specials
model = Model(ModelConfig(**fields), seed=0)
rng = np.random.default_rng(0)
ids = rng.integers(0, fields["vocab_size"], size=(batch, seq + 1))
inputs, targets = ids[:, :-1], ids[:, 1:]
mask = np.ones((batch, seq), dtype=np.float32)
if kind == "library":
    work = lambda: model.loss_and_grads(inputs, targets, mask)
elif kind == "decoding":
    prompt = ids[0, :64].tolist()
    work = lambda: model.generate(prompt, max_new_tokens=seq)
else:
    from scratchlm import allocator
    allocator.keep_freed_memory()  # as the command line of either tree does
    try:
        from scratchlm.examples import Batch
    except ImportError:
        from scratchlm.data import Batch
    try:
        from scratchlm.trainer import TrainConfig, Trainer
    except ImportError:
        from scratchlm.train import TrainConfig, Trainer
    tc = TrainConfig(batch_size=batch, steps=steps)
    if "threads" in inspect.signature(Trainer).parameters:
        from scratchlm.parallel import threads_per_process
        trainer = Trainer(model, tc, threads=threads_per_process(None))
    else:
        trainer = Trainer(model, tc)
    work = lambda: trainer.update([Batch(inputs, targets, mask)], 1e-4)
if kind == "training":
    rows = trainer.fit_corpus(corpus, seq, np.random.default_rng(0), steps)
    print(json.dumps({"s": batch * seq / rows[-1]["tokens_per_s"]}))
    sys.exit()
times = []
for i in range(updates + 2):
    t0 = time.perf_counter()
    work()
    if i >= 2:
        times.append(time.perf_counter() - t0)
print(json.dumps({"s": float(np.median(times))}))
"""


def probe(tree: Path, case: str, args, corpus: Path) -> float:
    """Seconds per update of `case`, run in a fresh process on `tree`'s source."""
    env = {"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin", "HOME": str(corpus.parent)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(CASES[case]), str(args.updates), str(args.steps)]
        + [str(corpus)],
        env=env,
        capture_output=True,
        text=True,
        cwd=tree,
    )
    if out.returncode:
        sys.exit(f"the probe of {case} failed on {tree}:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", default="62f926a", help="a commit (default: before the swappable parts)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=12)
    parser.add_argument("--steps", type=int, default=300, help="updates of the training case")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        corpora = {}  # one copy per tree: each writes its own kind of token file beside it
        if "shakespeare_training" in args.cases:
            for name in ("baseline", "current"):
                (Path(tmp) / name / "data").mkdir(parents=True)
                corpora[name] = shutil.copy(CORPUS, Path(tmp) / name / "data" / "input.txt")
        base = Path(tmp) / "baseline" / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(base), args.baseline],
            cwd=REPO,
            check=True,
        )
        try:
            trees = {"baseline": base, "current": REPO}
            best = {(case, name): float("inf") for case in args.cases for name in trees}
            for _ in range(args.rounds):
                for case in args.cases:
                    for name, tree in trees.items():
                        corpus = Path(corpora.get(name, Path(tmp) / name / "none"))
                        best[case, name] = min(best[case, name], probe(tree, case, args, corpus))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=REPO)
    print(f"baseline={args.baseline} current={head} (dirty files count as current)")
    for case in args.cases:
        _, batch, seq, _ = CASES[case]
        row = []
        for name in trees:
            s = best[case, name]
            row.append(f"{name}_ms={1e3 * s:.1f} {name}_tokens_per_s={batch * seq / s:.0f}")
        speedup = best[case, "baseline"] / best[case, "current"]
        print(f"case={case} " + " ".join(row) + f" speedup={speedup:.2f}x")


if __name__ == "__main__":
    main()
