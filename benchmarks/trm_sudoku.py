"""TRM against its baselines on 6x6 Sudoku, at the same training time: exact-puzzle accuracy on
held-out puzzles, by difficulty, for several seeds.

    python benchmarks/trm_sudoku.py                          every case, 3 seeds, 20 min each
    python benchmarks/trm_sudoku.py --jobs 2                 two cases at a time, one core each
    python benchmarks/trm_sudoku.py --models trm direct --seeds 0 --minutes 5
    python benchmarks/trm_sudoku.py --case trm --seed 0      one case in this process
    python benchmarks/trm_sudoku.py --report                 summarise the results kept in --data

Cases (docs/reason.md): `trm` (the Tiny Recursive Model, backprop through the last recursion),
`onestep` (the same with the one-step gradient of HRM), `direct` (the same 2-layer network applied
once: no recursion, no deep supervision) and `deep` (one pass through 2 T (n + 1) layers: as much
forward compute as one TRM supervision step). Each case trains in its own process, with one BLAS
thread, for `--minutes` of training time (evaluations excluded), and prints progress lines
(`progress case=... minutes=... expert=...`: the exact rate on a subset of the expert test
puzzles, EMA weights) as it goes; at the end it scores the whole test set and prints a `result`
line and keeps its model (`model_<case>_<seed>.safetensors` in --data: `scratchlm sudoku eval`
and `solve` read it). The parent then prints `summary` lines (mean and spread over seeds per
level), the rate after each supervision step on the whole test set, the curve of rate against
minutes, and the acceptance line of issue 23 (TRM on expert puzzles >= 0.5, and at
least twice the rate of `direct`).

The puzzle sets are made once (seeded) and kept in --data (reused by later runs): training
puzzles from the training grids, test puzzles from the disjoint test grids (reason/puzzles.py).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from scratchlm.reason.config import ReasonConfig
from scratchlm.reason.model import Reasoner
from scratchlm.reason.puzzles import LEVELS, PuzzleSet, load_set, make_set, save_set
from scratchlm.reason.train import Trainer, TrainSettings, evaluate

TRAIN_COUNTS = {0: 500, 1: 1500, 2: 1500, 3: 500}  # puzzles per level; augmented when drawn
TEST_COUNTS = {0: 200, 1: 200, 2: 300, 3: 500}
PROGRESS_PUZZLES = 200  # expert test puzzles scored at each progress line
MODEL = dict(d_model=16, n=6, T=3, n_sup=16, loss="stablemax")  # the TRM's network and recursion


def case_config(case: str) -> ReasonConfig:
    if case in ("trm", "onestep"):
        return ReasonConfig(kind=case, **MODEL)
    if case == "direct":
        return ReasonConfig(kind="direct", **MODEL)
    if case == "deep":
        return ReasonConfig(
            kind="direct", **(MODEL | {"n_layers": 2 * MODEL["T"] * (MODEL["n"] + 1)})
        )
    raise SystemExit(f"unknown case {case!r}")


def puzzle_sets(folder: Path) -> tuple[PuzzleSet, PuzzleSet]:
    folder.mkdir(parents=True, exist_ok=True)
    sets = []
    for split, counts in (("train", TRAIN_COUNTS), ("test", TEST_COUNTS)):
        path = folder / f"{split}.npz"
        if not path.exists():
            t = time.perf_counter()
            save_set(path, make_set(counts, split, seed=0))
            print(
                f"made {path} ({sum(counts.values())} puzzles, {time.perf_counter() - t:.0f} s)",
                flush=True,
            )
        sets.append(load_set(path))
    return sets[0], sets[1]


def run_case(case: str, seed: int, minutes: float, eval_every: float, folder: Path) -> dict:
    train, test = puzzle_sets(folder)
    expert = np.flatnonzero(test.levels == 3)[:PROGRESS_PUZZLES]
    progress_set = PuzzleSet(test.puzzles[expert], test.solutions[expert], test.levels[expert])
    cfg = case_config(case)
    settings = TrainSettings(minutes=minutes, eval_every=eval_every, seed=seed)  # the defaults
    trainer = Trainer(Reasoner(cfg, seed=seed), train, settings)
    curve = []

    def on_eval(t):
        rate = evaluate(t.ema_model(), progress_set)["final"]
        curve.append((round(t.train_seconds / 60, 2), rate))
        print(
            f"progress case={case} seed={seed} minutes={curve[-1][0]} updates={t.step} "
            f"puzzles_seen={t.samples} loss={t.last['loss']:.4f} expert={rate:.4f}",
            flush=True,
        )

    trainer.run(on_eval)
    model = trainer.ema_model()
    model.save(folder / f"model_{case}_{seed}.safetensors", description=f"trm_sudoku.py {case}")
    scores = evaluate(model, test)
    result = {
        "case": case,
        "seed": seed,
        "minutes": minutes,
        "updates": trainer.step,
        "parameters": trainer.model.num_parameters,
        "curve": curve,
    }
    result |= {name: scores[name] for name in LEVELS} | {"per_step": scores["per_step"]}
    levels = " ".join(f"{name}={scores[name]:.4f}" for name in LEVELS)
    print(
        f"result case={case} seed={seed} minutes={minutes} updates={trainer.step} {levels}",
        flush=True,
    )
    return result


def run_all(args) -> list[dict]:
    puzzle_sets(args.data)  # made once, before the cases start
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cases = [(m, s) for s in args.seeds for m in args.models]

    def one(case_seed):
        case, seed = case_seed
        out = args.data / f"result_{case}_{seed}.json"
        cmd = [
            sys.executable,
            __file__,
            "--case",
            case,
            "--seed",
            str(seed),
            "--minutes",
            str(args.minutes),
            "--eval-every",
            str(args.eval_every),
            "--data",
            str(args.data),
            "--json",
            str(out),
        ]
        with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
            for line in proc.stdout:
                print(line, end="", flush=True)
        if proc.returncode != 0:
            raise SystemExit(f"case {case} seed {seed} failed (exit {proc.returncode})")
        return json.loads(out.read_text())

    with ThreadPoolExecutor(args.jobs) as pool:
        return list(pool.map(one, cases))


def summarise(results: list[dict]) -> None:
    by_case: dict[str, list[dict]] = {}
    for r in results:
        by_case.setdefault(r["case"], []).append(r)
    for case, rs in by_case.items():
        parts = []
        for name in LEVELS:
            values = np.array([r[name] for r in rs])
            parts.append(f"{name}={values.mean():.4f}+-{values.std():.4f}")
        seeds = ",".join(f"{r['expert']:.3f}" for r in rs)
        updates = int(np.mean([r["updates"] for r in rs]))
        print(
            f"summary case={case} seeds={len(rs)} updates={updates} params={rs[0]['parameters']} "
            f"{' '.join(parts)} expert_by_seed={seeds}"
        )
        curve = np.array(
            [[rate for _, rate in r["curve"]] for r in rs if len(r["curve"]) == len(rs[0]["curve"])]
        )
        minutes = [m for m, _ in rs[0]["curve"]]
        print(
            f"curve case={case} "
            + " ".join(
                f"{m:g}min={v:.3f}" for m, v in zip(minutes, curve.mean(axis=0), strict=True)
            )
        )
    if "trm" in by_case and "direct" in by_case:
        trm = float(np.mean([r["expert"] for r in by_case["trm"]]))
        direct = float(np.mean([r["expert"] for r in by_case["direct"]]))
        ratio = trm / direct if direct else float("inf")
        ok = trm >= 0.5 and ratio >= 2
        print(
            f"acceptance trm_expert={trm:.4f} direct_expert={direct:.4f} ratio={ratio:.2f} pass={ok}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["trm", "onestep", "direct", "deep"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--minutes", type=float, default=20.0, help="training time per case")
    p.add_argument("--eval-every", type=float, default=2.5, help="minutes between progress lines")
    p.add_argument("--jobs", type=int, default=1, help="cases run at the same time")
    p.add_argument("--data", type=Path, default=Path("out/trm_sudoku"))
    p.add_argument("--case", help="run this one case here (what the parent starts)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="with --case: write the result here")
    p.add_argument("--report", action="store_true", help="only summarise the results in --data")
    args = p.parse_args()
    if args.report:
        summarise([json.loads(f.read_text()) for f in sorted(args.data.glob("result_*.json"))])
        return
    if args.case:
        result = run_case(args.case, args.seed, args.minutes, args.eval_every, args.data)
        if args.json:
            args.json.write_text(json.dumps(result))
        return
    summarise(run_all(args))


if __name__ == "__main__":
    main()
