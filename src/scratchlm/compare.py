"""`scratchlm compare`: several variants of one training run, raced on the same data, seeds and
budget, one after another; then a table, one plot and the points.

A variant is a name and the fields it changes, model fields (`ModelConfig`: norm, position, ffn,
share_weights, d_model, ...) and training fields (`TrainConfig`: optimizer, lr, beta2, ...) alike:
`rope:position=rope` or `lion:optimizer=lion,lr=5e-4,beta2=0.99` on the command line, or a table
`[variants.<name>]` of a TOML file. The base run itself (the run's own options) comes first, as
`base`. Every variant is checked, names and values, before anything trains.

The budget, for a corpus: the same number of updates (`steps`), of tokens (each variant gets the
updates its batches need to see that many), or of training seconds (the trainer's clock,
evaluations excluded); with a time budget each variant's schedule is sized to it, from the speed
of a few timed updates before its run (a cosine that ends with the budget trains better than one
cut off), and the budget stops it in any case. For example sets the budget is the phases' epochs.

Each run writes its model, checkpoint and metrics into the output folder as `scratchlm train`
does (`<variant>-s<seed>.*`); the comparison reads the metrics files back. It ends with the table
(parameters, tokens/s, final training and validation loss, training seconds and tokens until the
validation loss first reached `target`, and for chat sets the held-out exact-answer score; means
over the seeds, with the spread), `compare.png` (validation loss against training seconds and
against tokens, every run), optionally `compare_grads.png` (gradients.py's figures) and the points
(`--points` .json or .csv). Ctrl-C stops the run under way and keeps the finished ones' results.
"""

import csv
import io
import json
import math
import re
import statistics
import time
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .corpus import TokenCorpus, read_corpus
from .errors import ConfigError, InputError, ScratchLMError, WriteError
from .evaluate import exact_answer_score
from .examples import load_examples
from .fileio import atomic_write, check_file, os_errors
from .model import Model
from .parallel import threads_per_process
from .tokenizers import build_tokenizer
from .train import CORPUS_MODEL, RunOptions, train_corpus, train_examples
from .trainer import TrainConfig, Trainer

MODEL_FIELDS = tuple(f.name for f in fields(ModelConfig) if f.name != "vocab_size")
TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.name != "seed")  # seeds: --seeds
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
PROBE_UPDATES = 6  # timed updates (after two untimed ones) that size a time budget's schedule


@dataclass(frozen=True)
class Variant:
    name: str
    model: dict = field(default_factory=dict)  # ModelConfig fields it changes
    train: dict = field(default_factory=dict)  # TrainConfig fields it changes


@dataclass(frozen=True)
class Budget:
    """What every variant gets (at most one of them; none: the run's own steps or epochs)."""

    steps: int | None = None
    tokens: int | None = None
    seconds: float | None = None  # training seconds


# ------------------------------------------------------------------------------ variants


def parse_variant(text: str) -> Variant:
    """`name:field=value,field=value` (values as in TOML; a bare word is a string)."""
    name, _, rest = text.partition(":")
    items = [item for item in rest.split(",") if item.strip()]
    overrides = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"variant {text!r}: write name:field=value,field=value")
        overrides[key.strip()] = _value(value.strip())
    return variant_of(name.strip(), overrides, f"variant {text!r}")


def _value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # position=rope: a bare word is the string it spells


def variant_of(name: str, overrides: dict, where: str) -> Variant:
    """Route each field to the model or the training config; a field of neither is an error."""
    if not NAME.fullmatch(name or ""):
        raise ConfigError(f"{where}: a variant's name is letters, digits and -_.+, got {name!r}")
    model, train = {}, {}
    for key, value in overrides.items():
        if key in MODEL_FIELDS:
            model[key] = value
        elif key in TRAIN_FIELDS:
            train[key] = value
        else:
            raise ConfigError(
                f"{where}: unknown field {key!r}; model fields: {', '.join(MODEL_FIELDS)}; "
                f"training fields: {', '.join(TRAIN_FIELDS)}"
            )
    return Variant(name, model, train)


def read_variants(path: Path) -> list[Variant]:
    """The `[variants.<name>]` tables of a TOML file, in order."""
    check_file(path, ConfigError)
    try:
        with os_errors(path, ConfigError, "read the file"), open(path, "rb") as f:
            doc = tomllib.load(f)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    tables = doc.get("variants")
    if set(doc) != {"variants"} or not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{path}: write the variants as tables [variants.<name>], field = value")
    out = []
    for name, fields_ in tables.items():
        if not isinstance(fields_, dict):
            raise ConfigError(f"{path}: variants.{name} must be a table")
        out.append(variant_of(name, fields_, f"{path}: variant {name!r}"))
    return out


def with_base(variants: list[Variant]) -> list[Variant]:
    """`base` (the run unchanged) first, unless a variant has that name already."""
    return variants if any(v.name == "base" for v in variants) else [Variant("base"), *variants]


def check_variants(variants: list[Variant], opts: RunOptions, budget: Budget) -> None:
    """Every mistake before any training: two variants with one name, values a config refuses,
    a budget the data cannot have."""
    names = [v.name for v in variants]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"two variants are named {', '.join(map(repr, twice))}")
    given = [x for x in (budget.steps, budget.tokens, budget.seconds) if x is not None]
    if len(given) > 1:
        raise ConfigError("give one budget: --steps, --tokens or --minutes")
    if given and opts.corpus is None:
        raise ConfigError(
            "a budget of updates, tokens or time is for a corpus; example sets train their epochs"
        )
    if any(x <= 0 for x in given):
        raise ConfigError("the budget must be positive")
    for v in variants:
        try:
            run_of(opts, v, seed=0)
        except ScratchLMError as e:
            raise ConfigError(f"variant {v.name!r}: {e}") from None


def run_of(opts: RunOptions, variant: Variant, seed: int) -> RunOptions:
    """The base run with the variant's fields (configs built, so bad values raise here)."""
    model = {**opts.model, **variant.model}
    defaults = CORPUS_MODEL if opts.corpus is not None else {}
    ModelConfig.from_dict({**defaults, **model, "vocab_size": 2})  # the real size comes later
    train = lambda tc: TrainConfig(**{**vars(tc), **variant.train, "seed": seed})  # noqa: E731
    phases = [replace(p, train=train(p.train)) for p in opts.phases]
    return replace(opts, model=model, train=train(opts.train), phases=phases, seed=seed)


# ------------------------------------------------------------------------------ running


@dataclass
class Result:
    variant: str
    seed: int
    parameters: int
    rows: list[dict]  # the run's metrics rows
    val_exact: float | None = None  # chat sets: the whole held-out file

    @property
    def curve(self) -> list[dict]:
        return [r for r in self.rows if "val_loss" in r]

    def reached(self, target: float) -> dict | None:
        """The first row whose validation loss is at most `target`."""
        return next((r for r in self.curve if r["val_loss"] <= target), None)


def compare(
    opts: RunOptions, variants: list[Variant], seeds: list[int], budget: Budget, out: Path
) -> tuple[list[Result], bool]:
    """Train every variant with every seed, one after another -> (results, interrupted)."""
    check_variants(variants, opts, budget)
    with os_errors(out, WriteError, "create the output folder"):
        out.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for v in variants:
            for seed in seeds:
                results.append(_train_one(opts, v, seed, budget, out))
    except KeyboardInterrupt:
        return results, True
    return results, False


def _train_one(opts, variant: Variant, seed: int, budget: Budget, out: Path) -> Result:
    name = f"{variant.name}-s{seed}"
    run = run_of(opts, variant, seed)
    run = replace(run, output=out / f"{name}.safetensors", verbose=False, label=name)
    if run.corpus is not None:
        run = _with_budget(run, budget)
        (out / f"{name}.metrics.jsonl").unlink(missing_ok=True)  # a fresh file for a fresh run
        model = train_corpus(run)
        val_exact = None
    else:
        (out / f"{name}.metrics.jsonl").unlink(missing_ok=True)
        model = train_examples(run)
        val_exact = exact_answer_score(model, load_examples(run.val))[0] if run.val else None
    rows = [json.loads(line) for line in (out / f"{name}.metrics.jsonl").read_text().splitlines()]
    result = Result(variant.name, seed, model.num_parameters, rows, val_exact)
    print(summary_line(result), flush=True)
    return result


def _with_budget(run: RunOptions, budget: Budget) -> RunOptions:
    tc = run.train
    if budget.steps is not None:
        return replace(run, train=replace(tc, steps=budget.steps))
    if budget.tokens is not None:
        per_update = tc.batch_size * tc.accum * _seq_len(run)
        return replace(run, train=replace(tc, steps=max(1, math.ceil(budget.tokens / per_update))))
    if budget.seconds is not None:
        steps = max(1, int(budget.seconds / _seconds_per_update(run)))
        return replace(run, train=replace(tc, steps=steps), max_train_s=budget.seconds)
    return run


def _seq_len(run: RunOptions) -> int:
    cfg = {**CORPUS_MODEL, **run.model}
    return run.seq_len or cfg.get("max_seq_len", ModelConfig.max_seq_len)


def _seconds_per_update(run: RunOptions) -> float:
    """The median time of a few updates of this variant on the corpus (a throwaway model)."""
    tokenizer = build_tokenizer(run.tokenizer or "char", read_corpus(run.corpus), run.vocab_size)
    corpus = TokenCorpus.build(run.corpus, tokenizer)
    cfg = ModelConfig.from_dict({**CORPUS_MODEL, **run.model, "vocab_size": tokenizer.vocab_size})
    trainer = Trainer(
        Model(cfg, tokenizer, seed=run.seed), run.train, None, threads_per_process(run.threads)
    )
    rng, seq, times = np.random.default_rng(run.seed), _seq_len(run), []
    for i in range(PROBE_UPDATES + 2):
        batches = [corpus.sample(run.train.batch_size, seq, rng) for _ in range(run.train.accum)]
        t0 = time.perf_counter()
        trainer.update(batches, run.train.lr * 0.01)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ------------------------------------------------------------------------------ the report


def summary_line(r: Result) -> str:
    last = r.rows[-1]
    val = f" val_loss={r.curve[-1]['val_loss']:.4f}" if r.curve else ""
    exact = f" val_exact={r.val_exact:.4f}" if r.val_exact is not None else ""
    return (
        f"variant={r.variant} seed={r.seed} params={r.parameters} steps={last['step']} "
        f"train_s={last['train_s']:.1f} tokens_per_s={last['tokens'] / max(last['train_s'], 1e-9):.0f} "
        f"loss={last['loss']:.4f}{val}{exact}"
    )


def _spread(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(results: list[Result], target: float | None) -> str:
    """One line per variant: means over its seeds, ± their standard deviation."""
    head = ["variant", "seeds", "params", "tokens/s", "train loss", "val loss"]
    if target is not None:
        head += [f"s to {target}", f"tokens to {target}"]
    if any(r.val_exact is not None for r in results):
        head.append("held-out exact")
    lines = []
    for name in dict.fromkeys(r.variant for r in results):
        runs = [r for r in results if r.variant == name]
        last = [r.rows[-1] for r in runs]
        cells = [
            name,
            str(len(runs)),
            f"{runs[0].parameters:,}",
            _spread([row["tokens"] / max(row["train_s"], 1e-9) for row in last], 0),
            _spread([row["loss"] for row in last], 4),
            _spread([r.curve[-1]["val_loss"] for r in runs if r.curve], 4),
        ]
        if target is not None:
            hits = [r.reached(target) for r in runs]
            hit = [h for h in hits if h is not None]
            note = "" if len(hit) == len(runs) else f" ({len(hit)}/{len(runs)} reached)"
            cells += [
                _spread([h["train_s"] for h in hit], 1) + note,
                _spread([h["tokens"] for h in hit], 0),
            ]
        if "held-out exact" in head:
            cells.append(_spread([r.val_exact for r in runs if r.val_exact is not None], 4))
        lines.append(cells)
    widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)])


POINT_FIELDS = ("variant", "seed", "step", "train_s", "tokens", "loss", "val_loss", "val_exact")


def points(results: list[Result]) -> list[dict]:
    """Every evaluation of every run, as flat records."""
    return [
        {"variant": r.variant, "seed": r.seed, **{k: row.get(k) for k in POINT_FIELDS[2:]}}
        for r in results
        for row in r.rows
    ]


def write_points(results: list[Result], path: Path) -> None:
    """The points as JSON (a list of records) or CSV, by the file's extension."""
    records = points(results)
    if path.suffix.lower() == ".csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, POINT_FIELDS)
        writer.writeheader()
        writer.writerows(records)
        data = text.getvalue()
    elif path.suffix.lower() == ".json":
        data = json.dumps(records, indent=1) + "\n"
    else:
        raise InputError(f"{path}: the points are written as .json or .csv")
    with atomic_write(path, WriteError) as f:
        f.write(data.encode())
