"""`scratchlm sudoku`: a Tiny Recursive Model that learns to solve 6x6 Sudoku (docs/reason.md).

    scratchlm sudoku generate --level expert                  a puzzle (or --count N --output set.npz)
    scratchlm sudoku train --minutes 20 --output sudoku.safetensors
    scratchlm sudoku solve sudoku.safetensors "1.....|..3..."  (or --file puzzle.txt) [--steps]
    scratchlm sudoku eval sudoku.safetensors [--plot steps.png]

Training and test puzzles come from disjoint solution grids (reason/puzzles.py); `generate` and
`eval` draw from the test grids, `train` from the training grids.
"""

from pathlib import Path

LEVEL_HELP = "easy (one round of singles), medium (2-3), hard (4+) or expert (singles get stuck)"


def register(sub):
    p = sub.add_parser("sudoku", help="a Tiny Recursive Model that solves 6x6 Sudoku")
    cmds = p.add_subparsers(dest="sudoku_command", metavar="ACTION", parser_class=type(p))
    cmds.required = True
    _register_generate(cmds)
    _register_train(cmds)
    _register_solve(cmds)
    _register_eval(cmds)


def _register_generate(cmds):
    g = cmds.add_parser("generate", help="make puzzles with one solution")
    g.add_argument("--level", default="hard", help=LEVEL_HELP)
    g.add_argument("--count", type=int, default=1)
    g.add_argument("--split", choices=("test", "train"), default="test")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--output", type=Path, help="write a puzzle set (.npz) instead of printing")
    g.set_defaults(func=generate_main)


def _register_train(cmds):
    t = cmds.add_parser("train", help="train a reasoner under a time budget")
    t.add_argument("--output", type=Path, default=Path("out/sudoku.safetensors"))
    t.add_argument("--minutes", type=float, default=20.0, help="training time budget")
    t.add_argument("--max-steps", type=int, help="stop after this many updates instead")
    m = t.add_argument_group("model")
    m.add_argument("--kind", choices=("trm", "onestep", "direct"), default="trm")
    m.add_argument("--mixer", choices=("mlp", "attention"), default="mlp")
    m.add_argument("--loss", choices=("stablemax", "softmax"), default="stablemax")
    for name, kind in (("d-model", int), ("layers", int), ("n", int), ("T", int), ("n-sup", int)):
        m.add_argument(f"--{name}", type=kind)
    o = t.add_argument_group("training")
    for name, kind in (("batch-size", int), ("lr", float), ("weight-decay", float), ("ema", float)):
        o.add_argument(f"--{name}", type=kind)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--train-set", type=Path, help="a puzzle set (.npz) to train on")
    t.add_argument("--train-puzzles", type=int, default=4000, help="else: generate this many")
    t.add_argument("--eval-puzzles", type=int, default=200, help="held-out hard+expert puzzles")
    t.add_argument("--eval-every", type=float, default=2.0, help="minutes between evaluations")
    t.set_defaults(func=train_main)


def _register_solve(cmds):
    s = cmds.add_parser("solve", help="solve a typed puzzle or one in a file")
    s.add_argument("model", type=Path)
    s.add_argument("puzzle", nargs="?", help="36 cells, '.' or 0 for an empty one")
    s.add_argument("--file", type=Path, help="a text file holding the puzzle")
    s.add_argument("--steps", action="store_true", help="show the grid after every step")
    s.set_defaults(func=solve_main)


def _register_eval(cmds):
    e = cmds.add_parser("eval", help="exact-solve rates by difficulty and by supervision step")
    e.add_argument("model", type=Path)
    e.add_argument("--test-set", type=Path, help="a puzzle set (.npz); else one is generated")
    e.add_argument("--per-level", type=int, default=100, help="generated puzzles per level")
    e.add_argument("--seed", type=int, default=1)
    e.add_argument("--plot", type=Path, help="PNG of the exact-solve rate against steps")
    e.set_defaults(func=eval_main)


# ----------------------------------------------------------------------------- actions


def _level(name: str) -> int:
    from ..errors import ConfigError
    from ..reason.puzzles import LEVELS

    if name not in LEVELS:
        raise ConfigError(f"unknown level {name!r}: use {', '.join(LEVELS)}")
    return LEVELS.index(name)


def _make_set(counts: dict[int, int], split: str, seed: int, what: str):
    from tqdm import tqdm

    from ..reason.puzzles import make_set

    with tqdm(
        total=sum(counts.values()), desc=what, unit="puzzle", leave=False, disable=None
    ) as bar:
        return make_set(counts, split, seed, progress=bar.update)


def generate_main(args) -> int:
    from ..errors import ConfigError
    from ..reason.puzzles import save_set
    from ..reason.sudoku import format_grid

    if args.count < 1:
        raise ConfigError(f"--count must be >= 1, got {args.count}")
    data = _make_set({_level(args.level): args.count}, args.split, args.seed, "generating")
    if args.output:
        save_set(args.output, data)
        print(f"wrote {args.count} {args.level} puzzles to {args.output}")
        return 0
    for puzzle in data.puzzles:
        print(format_grid(puzzle) + "\n")
    return 0


def train_main(args) -> int:
    from dataclasses import replace

    from ..log import log_metrics
    from ..reason.config import ReasonConfig
    from ..reason.model import Reasoner
    from ..reason.puzzles import load_set
    from ..reason.train import Trainer, TrainSettings, evaluate

    options = {"d_model": args.d_model, "n_layers": args.layers, "n": args.n, "T": args.T}
    options["n_sup"] = args.n_sup
    cfg = ReasonConfig(
        kind=args.kind,
        mixer=args.mixer,
        loss=args.loss,
        **{k: v for k, v in options.items() if v is not None},
    )
    training = {"batch_size": args.batch_size, "lr": args.lr, "ema": args.ema}
    training["weight_decay"] = args.weight_decay
    settings = replace(
        TrainSettings(minutes=args.minutes, max_steps=args.max_steps, seed=args.seed),
        eval_every=args.eval_every,
        **{k: v for k, v in training.items() if v is not None},
    )
    if args.train_set:
        data = load_set(args.train_set)
    else:
        per_level = [args.train_puzzles // 8, 3 * args.train_puzzles // 8]
        per_level += [3 * args.train_puzzles // 8, args.train_puzzles // 8]
        data = _make_set(dict(enumerate(per_level)), "train", args.seed, "training puzzles")
    quarter = max(1, args.eval_puzzles // 2)
    held_out = _make_set({2: quarter, 3: quarter}, "test", args.seed, "held-out puzzles")
    model = Reasoner(cfg, seed=args.seed)
    trainer = Trainer(model, data, settings)

    def on_eval(t):
        scores = evaluate(t.ema_model(), held_out)
        log_metrics(
            "sudoku_eval",
            minutes=round(t.train_seconds / 60, 2),
            step=t.step,
            loss=t.last["loss"],
            train_exact=t.last["train_exact"],
            hard=scores["hard"],
            expert=scores["expert"],
        )

    bar = _progress_bar(settings)
    with bar:
        trainer.run(on_eval, bar)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sha = trainer.ema_model().save(args.output, description=f"TRM sudoku ({cfg.kind})")
    print(f"saved {args.output} (sha256 {sha[:16]}..., {model.num_parameters:,} parameters)")
    return 0


def _progress_bar(settings):
    from tqdm import tqdm

    if settings.max_steps:
        return tqdm(
            total=settings.max_steps, desc="training", unit="update", leave=False, disable=None
        )
    return tqdm(
        total=round(60 * settings.minutes),
        desc="training",
        unit="s",
        leave=False,
        disable=None,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s {postfix}",
    )


def solve_main(args) -> int:
    from ..errors import ConfigError
    from ..reason.model import load_reasoner
    from ..reason.report import side_by_side
    from ..reason.sudoku import format_grid, parse_grid, read_puzzle

    if (args.puzzle is None) == (args.file is None):
        raise ConfigError("give the puzzle as an argument or with --file, not both or neither")
    if args.file is not None:
        puzzle = read_puzzle(args.file)
    else:
        puzzle = parse_grid(args.puzzle, "the puzzle argument")
    model = load_reasoner(args.model)
    source = str(args.file) if args.file else "the puzzle argument"
    result = model.solve(puzzle, source)
    print("puzzle:\n" + format_grid(puzzle) + "\n")
    if args.steps:
        titles = [f"step {k + 1} (halt {h:.2f})" for k, h in enumerate(result.halt)]
        print(side_by_side(result.steps, titles) + "\n")
        print("(* marks a cell that changed at that step)\n")
    print("answer:\n" + format_grid(result.grid) + "\n")
    if not result.problems:
        first = result.solved.index(True) + 1
        print(f"solved (checked against the rules), first right after step {first}")
        return 0
    shown = "; ".join(result.problems[:4])
    more = len(result.problems) - 4
    print(f"not solved: {shown}" + (f"; and {more} more problem(s)" if more > 0 else ""))
    return 1


def eval_main(args) -> int:
    from ..plot import plot_steps
    from ..reason.model import load_reasoner
    from ..reason.puzzles import LEVELS, load_set
    from ..reason.train import evaluate

    model = load_reasoner(args.model)
    if args.test_set:
        data = load_set(args.test_set)
    else:
        data = _make_set(
            dict.fromkeys(range(len(LEVELS)), args.per_level), "test", args.seed, "test puzzles"
        )
    by_level = {}
    for level, name in enumerate(LEVELS):
        mask = data.levels == level
        if mask.any():
            subset = type(data)(data.puzzles[mask], data.solutions[mask], data.levels[mask])
            by_level[name] = evaluate(model, subset)["per_step"]
            print(f"level={name} puzzles={int(mask.sum())} exact={by_level[name][-1]:.4f}")
    for k in range(len(next(iter(by_level.values())))):
        print(f"step={k + 1} " + " ".join(f"{n}={r[k]:.4f}" for n, r in by_level.items()))
    if args.plot and plot_steps(by_level, args.plot, f"{args.model.name}: solved after each step"):
        print(f"wrote {args.plot}")
    return 0
