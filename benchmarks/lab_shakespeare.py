"""The lab's measured answer (README, "What each part is worth"): on Tiny Shakespeare, 2 minutes of
training each, the corpus preset against each single change, then the best ones combined, then
the leaders with 3 seeds. It runs `scratchlm compare` on a copy of the corpus (training writes a
token file beside its corpus) and prints its table.

    python benchmarks/lab_shakespeare.py singles [--minutes 2] [--seeds 0]
    python benchmarks/lab_shakespeare.py combos
    python benchmarks/lab_shakespeare.py leaders [--seeds 0 1 2]

Each stage reads its variants from benchmarks/lab/<stage>.toml; the base run is the preset as the
race found it (benchmarks/lab/base.toml: DyT and AdamW, before RMSNorm and Muon won). The budget
is training time (evaluations excluded; each variant's cosine schedule sized to it from a few
timed updates), the same validation windows for every run of a seed, and the time and tokens until
the validation loss first reaches 1.88 (nanoGPT's CPU preset's best) are reported beside the final
loss.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "benchmarks/lab"  # base.toml (the base run) and one file of variants per stage
CORPUS = os.environ.get("SCRATCHLM_SHAKESPEARE", REPO.parent / "shared/data/tinyshakespeare.txt")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("singles", "combos", "leaders"))
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--corpus", type=Path, default=Path(CORPUS))
    parser.add_argument("--output-dir", type=Path, default=Path("out/lab"))
    args = parser.parse_args()
    seeds = args.seeds or ([0, 1, 2] if args.stage == "leaders" else [0])
    out = (args.output_dir / args.stage).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = shutil.copy(args.corpus, Path(tmp) / "input.txt")
        cmd = [sys.executable, "-m", "scratchlm", "--log-level", "warning", "compare"]
        cmd += ["--corpus", corpus, "--tokenizer", "char", "--minutes", str(args.minutes)]
        cmd += ["--eval-every", "50", "--target-loss", "1.88", "--seeds", *map(str, seeds)]
        cmd += ["--config", str(LAB / "base.toml"), "--variants", str(LAB / f"{args.stage}.toml")]
        cmd += ["--output-dir", str(out), "--points", str(out / "points.csv"), "--plot-grads"]
        sys.exit(subprocess.run(cmd, cwd=tmp).returncode)


if __name__ == "__main__":
    main()
