"""`scratchlm train`: the seed's two phases on your files, or step-based training on a corpus.

    scratchlm train --pretrain facts.json --chat chat.json [--val held_out.json --epochs 30 ...]
    scratchlm train --corpus input.txt --tokenizer char [--steps 2000 --max-minutes 2 ...]

Corpus training starts from the Tiny Shakespeare preset (train.CORPUS_MODEL, CORPUS_TRAIN), example
sets from TrainConfig's defaults.

A TOML file (`--config`) may hold a [model] table (ModelConfig fields) and a [train] table
(TrainConfig fields); options given on the command line win.
"""

import tomllib
from dataclasses import fields
from pathlib import Path

from ..errors import ConfigError
from ..fileio import check_file, os_errors
from ..optim import OPTIMIZERS
from ..tokenizers import TOKENIZERS
from ..trainer import TrainConfig

TRAIN_OPTIONS = {  # command-line option -> TrainConfig field
    "epochs": "epochs",
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "optimizer": "optimizer",
    "weight_decay": "weight_decay",
    "dropout": "dropout",
    "grad_clip": "grad_clip",
    "accum": "accum",
    "max_grad": "max_grad",
}


def register(sub):
    p = sub.add_parser("train", help="train on your own files (example sets or a text corpus)")
    add_run_options(p)
    p.add_argument("--max-minutes", type=float, help="stop cleanly after this wall time, and save")
    p.add_argument("--output", type=Path, default=Path("out/model.safetensors"))
    p.add_argument("--resume", type=Path, metavar="CHECKPOINT")
    p.set_defaults(func=main)


def add_run_options(p) -> None:
    """The data and the training options of a run (`train`, and `compare`'s base run)."""
    data = p.add_argument_group("data")
    data.add_argument("--pretrain", type=Path, nargs="+", default=[], metavar="FILE")
    data.add_argument("--chat", type=Path, nargs="+", default=[], metavar="FILE")
    data.add_argument("--corpus", type=Path, metavar="FILE", help="a plain-text corpus")
    data.add_argument(
        "--val", type=Path, metavar="FILE", help="held-out chat examples: scored, not trained on"
    )
    p.add_argument("--tokenizer", choices=tuple(TOKENIZERS))
    p.add_argument("--vocab-size", type=int, help="bpe: the vocabulary to train to")
    p.add_argument("--config", type=Path, help="TOML file with [model] and [train] tables")
    p.add_argument("--epochs", type=int, help="pre-training epochs (example sets)")
    p.add_argument("--chat-epochs", type=int, help="instruction-tuning epochs")
    p.add_argument("--steps", type=int, help="optimizer updates (corpus)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--chat-lr", type=float)
    p.add_argument(
        "--optimizer", choices=tuple(OPTIMIZERS), help="default adamw; muon for --corpus"
    )
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--dropout", type=float, help="training-only dropout rate (default 0)")
    p.add_argument("--grad-clip", type=float)
    p.add_argument("--accum", type=int, help="micro-batches per update")
    p.add_argument("--max-grad", type=float, help="skip updates with max |grad| above this")
    p.add_argument("--assistant-only", action="store_true", help="chat loss on answers only")
    p.add_argument("--seq-len", type=int, help="corpus: window length (default max_seq_len)")
    p.add_argument("--eval-every", type=int, default=200, help="corpus: updates between evals")
    p.add_argument("--seed", type=int, default=0)
    add_threads_option(p)


def add_threads_option(p):
    p.add_argument(
        "--threads",
        type=int,
        help="threads computing the shards of each batch (default: this machine's cores, shared "
        "among its mpiexec processes)",
    )


def read_toml(path: Path) -> tuple[dict, dict]:
    """-> ([model] table, [train] table) of a TOML config file."""
    check_file(path, ConfigError)
    try:
        with os_errors(path, ConfigError, "read the file"), open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    except ValueError as e:  # an integer of over 4,300 digits
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    unknown = sorted(set(doc) - {"model", "train"})
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {', '.join(unknown)}; use [model] and [train]")
    for table in ("model", "train"):
        if not isinstance(doc.get(table, {}), dict):
            raise ConfigError(f"{path}: {table} must be a table: [{table}]")
    train = doc.get("train", {})
    known = {f.name for f in fields(TrainConfig)}
    bad = sorted(set(train) - known)
    if bad:
        raise ConfigError(f"{path}: unknown [train] option(s): {', '.join(bad)}")
    return doc.get("model", {}), train


def train_config(args, base: dict, **overrides) -> TrainConfig:
    values = dict(base)
    for option, name in TRAIN_OPTIONS.items():
        if getattr(args, option, None) is not None:
            values[name] = getattr(args, option)
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["seed"] = args.seed
    return TrainConfig(**values)


def run_options(args):
    """The `RunOptions` the options of `add_run_options` describe (the run is not started)."""
    from ..train import CORPUS_TRAIN, Phase, RunOptions

    model_cfg, train_cfg = read_toml(args.config) if args.config else ({}, {})
    opts = RunOptions(
        output=getattr(args, "output", RunOptions.output),
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
        model=model_cfg,
        seed=args.seed,
        resume=getattr(args, "resume", None),
        threads=args.threads,
    )
    if args.corpus is not None:
        if args.pretrain or args.chat or args.val:
            raise ConfigError("give either --corpus or --pretrain/--chat/--val files, not both")
        opts.corpus = args.corpus
        opts.train = train_config(args, {**CORPUS_TRAIN, **train_cfg})
        opts.seq_len, opts.eval_every = args.seq_len, args.eval_every
        opts.max_minutes = getattr(args, "max_minutes", None)
        return opts
    if not (args.pretrain or args.chat or opts.resume):
        raise ConfigError("nothing to train on: give --pretrain and/or --chat files, or --corpus")
    opts.val = args.val
    if args.pretrain:
        opts.phases.append(Phase("pretrain", args.pretrain, train_config(args, train_cfg)))
    if args.chat:
        chat_tc = train_config(args, train_cfg, epochs=args.chat_epochs, lr=args.chat_lr)
        opts.phases.append(Phase("chat", args.chat, chat_tc, assistant_only=args.assistant_only))
    return opts


def main(args) -> int:
    from ..train import train_corpus, train_examples

    opts = run_options(args)
    (train_corpus if opts.corpus is not None else train_examples)(opts)
    return 0
