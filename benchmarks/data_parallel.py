"""Training throughput of data parallelism: processes (mpiexec) and threads against one process.

    python benchmarks/data_parallel.py [--updates 30] [--rounds 2] [--case shakespeare]

For the Tiny Shakespeare preset (batch 16 x 64) and the larger config of train_step.py (b-large,
batch 8 x 256) it times full training updates (`Trainer.update`: gradients, reduction, optimizer
step) in four layouts of this machine's cores, run one after another in each round (the best round
counts, so that a busy moment of the machine does not):

    1proc_2blas      one process, one shard, BLAS on 2 threads (the plain trainer)
    1proc_1blas      one process, one shard, BLAS on 1 thread
    2proc_1blas      mpiexec -n 2, one shard per process, BLAS on 1 thread
    1proc_2threads   one process, two shards on two threads, BLAS on 1 thread in each

and prints tokens/s, ms per update, the speed-ups, and for 2 processes the bytes all-reduced per
update and the time of that Allreduce alone (median of 20, after a barrier) and its share of an
update. The corpus is copied into a temporary folder first (its token file is written there).
Needs the optional extra `mpi` for the 2-process layout.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scratchlm import Model, ModelConfig
from scratchlm.allocator import keep_freed_memory
from scratchlm.corpus import TokenCorpus, read_corpus
from scratchlm.examples import Batch
from scratchlm.parallel import get_world
from scratchlm.tokenizers import build_tokenizer
from scratchlm.train import CORPUS_MODEL, CORPUS_TRAIN
from scratchlm.trainer import TrainConfig, Trainer

sys.path.insert(0, str(Path(__file__).parent))
from train_step import CASES  # noqa: E402  (the b-large config, defined once)

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE = os.environ.get(
    "SCRATCHLM_SHAKESPEARE", REPO.parent / "shared/data/tinyshakespeare.txt"
)
LAYOUTS = {  # name -> (processes, threads per process, BLAS threads)
    "1proc_2blas": (1, 1, 2),
    "1proc_1blas": (1, 1, 1),
    "2proc_1blas": (2, 1, 1),
    "1proc_2threads": (1, 2, 1),
}


# ------------------------------------------------------------------------------ one layout


def batches(case: str, corpus: Path | None):
    """-> (model, a function drawing one global batch from an rng)."""
    if case == "shakespeare":
        tokenizer = build_tokenizer("char", read_corpus(corpus))
        tokens = get_world().in_turn(lambda: TokenCorpus.build(corpus, tokenizer))
        model = Model(ModelConfig(vocab_size=tokenizer.vocab_size, **CORPUS_MODEL), tokenizer)
        B, T = CORPUS_TRAIN["batch_size"], CORPUS_MODEL["max_seq_len"]
        return model, lambda rng: tokens.sample(B, T, rng)
    cfg, B, T = CASES[case]
    model = Model(cfg)

    def draw(rng):
        ids = rng.integers(0, cfg.vocab_size, (B, T + 1))
        return Batch(ids[:, :-1], ids[:, 1:], np.ones((B, T), dtype=np.float32))

    return model, draw


def measure(case: str, threads: int, updates: int, corpus: Path | None) -> dict | None:
    """Times `updates` training updates on every rank; rank 0 returns the figures."""
    keep_freed_memory()
    world = get_world()
    model, draw = batches(case, corpus)
    trainer = Trainer(model, TrainConfig(lr=1e-3), threads=threads)
    rng = np.random.default_rng(0)
    warmup = [draw(rng) for _ in range(2)]
    timed = [draw(rng) for _ in range(updates)]
    for batch in warmup:
        trainer.update([batch], 1e-3)
    if world.comm is not None:
        world.comm.Barrier()
    t0 = time.perf_counter()
    for batch in timed:
        trainer.update([batch], 1e-3)
    seconds = time.perf_counter() - t0
    figures = {
        "tokens_per_s": updates * timed[0].mask.size / seconds,
        "ms_per_update": 1e3 * seconds / updates,
    }
    if world.comm is not None:
        buf = trainer.parallel.buffer.flat
        times = []
        for _ in range(20):
            world.comm.Barrier()
            t = time.perf_counter()
            world.sum_in_place(buf)
            times.append(time.perf_counter() - t)
        figures["allreduce_bytes"] = buf.nbytes
        figures["allreduce_ms"] = 1e3 * float(np.median(times))
    return figures if world.is_root else None


# ------------------------------------------------------------------------------ the driver


def run_layout(layout: str, case: str, updates: int, corpus: Path) -> dict:
    processes, threads, blas = LAYOUTS[layout]
    cmd = [sys.executable, __file__, "--worker", case, "--threads", str(threads)]
    cmd += ["--updates", str(updates), "--corpus", str(corpus)]
    if processes > 1:
        cmd = [str(Path(sys.executable).with_name("mpiexec")), "-n", str(processes), *cmd]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(blas), "OMP_NUM_THREADS": str(blas)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"{layout} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--updates", type=int, default=None, help="timed updates (default: by case)"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--case", choices=("shakespeare", "b-large"), action="append")
    parser.add_argument("--corpus", type=Path, default=Path(SHAKESPEARE))
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        figures = measure(args.worker, args.threads, args.updates, args.corpus)
        if figures is not None:
            print(json.dumps(figures))
        return
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(shutil.copy(args.corpus, folder))  # never write next to the shared corpus
        for case in args.case or ("shakespeare", "b-large"):
            updates = args.updates or {"shakespeare": 30, "b-large": 3}[case]
            best = {}
            for _ in range(args.rounds):
                for layout in LAYOUTS:
                    got = run_layout(layout, case, updates, corpus)
                    if got["tokens_per_s"] > best.get(layout, {"tokens_per_s": 0})["tokens_per_s"]:
                        best[layout] = got
            report(case, best)


def report(case: str, best: dict):
    base = best["1proc_1blas"]["tokens_per_s"]
    for layout, got in best.items():
        print(
            f"case={case} layout={layout} tokens_per_s={got['tokens_per_s']:.0f} "
            f"ms_per_update={got['ms_per_update']:.1f} vs_1proc_1blas={got['tokens_per_s'] / base:.2f}"
        )
    two = best["2proc_1blas"]
    print(
        f"case={case} allreduce_bytes={two['allreduce_bytes']} "
        f"allreduce_ms={two['allreduce_ms']:.3f} "
        f"allreduce_share={two['allreduce_ms'] / two['ms_per_update']:.2%} "
        f"2proc_vs_1proc_2blas={two['tokens_per_s'] / best['1proc_2blas']['tokens_per_s']:.2f}"
    )


if __name__ == "__main__":
    main()
