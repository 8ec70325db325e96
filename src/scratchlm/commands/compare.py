"""`scratchlm compare`: train variants of one run on the same data and budget, then compare them.

    scratchlm compare --corpus input.txt --minutes 2 --variant rope:position=rope \\
        --variant lion:optimizer=lion,lr=5e-4,beta2=0.99 --seeds 0 1 2 --target-loss 1.88
    scratchlm compare --pretrain facts.json --chat chat.json --val held_out.json \\
        --variants variants.toml

The base run takes every option of `scratchlm train` (data, --config, --lr, ...); each variant
changes some of its fields (compare.py). Prints a line per run as it ends, then the table, and
writes the runs' files, the table (compare.txt) and the plot (compare.png) into --output-dir.
"""

from pathlib import Path

from .train import add_run_options


def register(sub):
    p = sub.add_parser("compare", help="train variants of one run on the same data, compare them")
    add_run_options(p)
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:FIELD=VALUE,...",
        help="a variant: model and training fields it changes (repeat for more)",
    )
    p.add_argument(
        "--variants", type=Path, metavar="TOML", help="variants as [variants.<name>] tables"
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--tokens", type=int, help="corpus: every variant trains on this many tokens"
    )
    budget.add_argument(
        "--minutes", type=float, help="corpus: training minutes per run (evaluations excluded)"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="train each variant with each")
    p.add_argument(
        "--target-loss", type=float, help="report time and tokens to this validation loss"
    )
    p.add_argument("--output-dir", type=Path, default=Path("out/compare"))
    p.add_argument("--points", type=Path, metavar="FILE", help="every evaluation as .json or .csv")
    p.add_argument("--plot-grads", action="store_true", help="also draw compare_grads.png")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..compare import (
        Budget,
        compare,
        parse_variant,
        read_variants,
        table,
        with_base,
        write_points,
    )
    from ..errors import ConfigError, WriteError
    from ..fileio import atomic_write
    from ..plot import plot_compare, plot_gradients
    from .train import run_options

    opts = run_options(args)
    variants = [parse_variant(v) for v in args.variant]
    if args.variants is not None:
        variants += read_variants(args.variants)
    if args.points is not None and args.points.suffix.lower() not in (".json", ".csv"):
        raise ConfigError(f"{args.points}: --points writes .json or .csv")
    minutes = None if args.minutes is None else 60 * args.minutes
    steps = (
        args.steps if opts.corpus is not None and (args.tokens, minutes) == (None, None) else None
    )
    budget = Budget(steps=steps, tokens=args.tokens, seconds=minutes)
    out = args.output_dir
    results, interrupted = compare(opts, with_base(variants), args.seeds, budget, out)
    if interrupted:
        print(f"interrupted: {len(results)} finished run(s) are compared below")
    if not results:
        return 130
    text = table(results, args.target_loss)
    print(text)
    with atomic_write(out / "compare.txt", WriteError) as f:
        f.write((text + "\n").encode())
    if plot_compare(results, out / "compare.png", args.target_loss):
        print(f"plot: {out / 'compare.png'}")
    if args.plot_grads and plot_gradients(results, out / "compare_grads.png"):
        print(f"gradients: {out / 'compare_grads.png'}")
    if args.points is not None:
        write_points(results, args.points)
        print(f"points: {args.points}")
    return 130 if interrupted else 0
