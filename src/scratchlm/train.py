"""Training runs: the presets, the run options, the phases and the two entry points.

Two ways to feed the model, one update rule (trainer.py):
- example sets (`train_examples`: the seed's pre-training and instruction tuning): epochs of
  shuffled, padded whole examples;
- corpora (`train_corpus`: your own text): steps of random fixed-length windows.

Both entry points take a `RunOptions`, start fresh or `resume` from a checkpoint (the next update
is the one an uninterrupted run would take: same batches, same optimizer state, same schedule),
write a checkpoint next to the output (`<name>.ckpt.safetensors`, atomically) and `finish` the same
way: the model file, the metrics file (`<name>.metrics.jsonl`) and the loss plot. Under mpiexec
every rank trains on the same global batches and takes the same steps; rank 0 alone logs,
evaluates and writes files (docs/parallel.md).

A held-out chat file (`RunOptions.val`) is read for evaluation only, never for training: the chat
phase records the loss and exact-answer score of a fixed sample of it per epoch (`val_loss`,
`val_exact`), and the run ends by printing the exact-answer scores on the whole chat set and the
whole held-out file. A corpus keeps its last 10 % for validation: every interval records its loss
on the same windows and prints a generated sample.

A checkpoint resumes only with the kind of command that wrote it (example sets with their phase's
files, a corpus with `--corpus`); otherwise a `ConfigError` says what to pass instead. Outputs fail
cleanly: a model or checkpoint that cannot be written is an error and the old file stays; the
metrics and the loss plot are by-products, so failing to write them (a full disk) is a warning and
the run goes on (the next checkpoint write stops it if the disk stays full), and the model, written
first, is never lost to them.
"""

import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path

import numpy as np

from . import chat_format
from .checkpoint import load_checkpoint
from .config import ModelConfig
from .corpus import TokenCorpus, read_corpus
from .errors import ConfigError, ModelFileFormatError, WriteError
from .evaluate import answer, exact_answer_score, examples_loss, mean_loss
from .examples import load_examples, text_batcher
from .fileio import os_errors
from .model import Model
from .parallel import get_world, threads_per_process
from .plot import plot_metrics
from .tokenizers import build_tokenizer
from .trainer import MetricsLog, TrainConfig, Trainer

logger = logging.getLogger("scratchlm")

BUNDLED_DATA = Path(str(files("scratchlm") / "bundled"))  # package data: works from a wheel too
DEMO_QUESTION = "How do mountains form?"

# The Tiny Shakespeare preset (README), the defaults of corpus training: 3 recursions of a 128-wide
# block, 64-character context. CoPE positions count back at most 15 units; a 64-token window rarely
# needs more, and the smaller table is cheaper. Small batches at a high learning rate give the most
# progress per second here; beta2 = 0.95 (a shorter memory of the squared gradients, as language
# models usually train) let that rate work. RMSNorm and Muon won the lab's race of every single
# change and the best combinations (README, "What each part is worth"; benchmarks/lab/): 3 seeds of
# 2 minutes ended at validation loss 1.586 against the DyT + AdamW preset's 1.660, at much the same
# speed. 2,800 updates are what 2 minutes of training take on this project's machine, so that the
# cosine schedule ends with the budget.
CORPUS_MODEL = {
    "d_model": 128,
    "n_heads": 4,
    "d_ff": 512,
    "depth": 3,
    "max_seq_len": 64,
    "cope_max_pos": 16,
    "norm": "rmsnorm",
}
CORPUS_TRAIN = {
    "steps": 2800,
    "batch_size": 16,
    "lr": 5e-3,
    "warmup": 0.02,
    "beta2": 0.95,
    "optimizer": "muon",
}
SAMPLE_TOKENS = 200
EVAL_BATCHES = 10  # validation windows of a corpus evaluation: batch_size of them each
VAL_SCORED = 100  # held-out examples whose answers are scored after every epoch


# ------------------------------------------------------------------------------ entry points


@dataclass
class Phase:
    """One pass of example-set training: its name ("pretrain", "chat"), files and schedule."""

    name: str
    files: list[Path]
    train: TrainConfig
    assistant_only: bool = False  # chat: count the loss on the answers only


@dataclass
class RunOptions:
    """Everything a training run needs besides the hyper-parameters of its updates."""

    output: Path = Path("out/model.safetensors")
    tokenizer: str | None = None  # word, char or bpe; None: word (example sets), char (corpora)
    vocab_size: int | None = None  # bpe: the vocabulary to train to
    model: dict = field(default_factory=dict)  # ModelConfig fields other than vocab_size
    seed: int = 0
    resume: Path | None = None  # a checkpoint to continue from
    # example sets
    phases: list[Phase] = field(default_factory=list)
    val: Path | None = None  # held-out chat examples: scored, never trained on
    question: str = DEMO_QUESTION  # asked before and after training
    # corpora
    corpus: Path | None = None
    train: TrainConfig = field(default_factory=lambda: TrainConfig(**CORPUS_TRAIN))
    seq_len: int | None = None  # window length (default: max_seq_len)
    eval_every: int = 200
    max_minutes: float | None = None  # stop cleanly after this wall time, and save
    max_train_s: float | None = None  # ... or after this many training seconds (evals excluded)
    threads: int | None = None  # threads per process (None: its share of the cores); parallel.py
    verbose: bool = True  # print what the run does (samples, answers before and after)
    label: str = ""  # named in the progress bars ("rope: corpus"), e.g. by compare


def demo_options(output: Path = Path("out/model.safetensors"), seed: int = 0) -> RunOptions:
    """The bundled corpus with the settings tuned for `make demo` on the held-out chat files
    (benchmarks/chat_quality.py; each choice measured, see README): the caseless word tokenizer
    over the words seen at least twice (the rest are `<unk>` in training too, so the model learns
    what to do with a word it does not know), a short pre-training, then instruction tuning in
    batches of 4 (many small updates teach far more per second than few large ones), the loss on
    the answers only, dropout 0.1, weight decay 0.1 on the matrices, and 4 attention heads (as
    good as 8 here, and faster)."""
    from .tokenizers import CaselessWordTokenizer

    pre = TrainConfig(epochs=10, batch_size=32, lr=2e-3, warmup=0.05, weight_decay=0.1, seed=seed)
    chat = TrainConfig(
        epochs=10, batch_size=4, lr=3e-3, warmup=0.05, weight_decay=0.1, dropout=0.1, seed=seed
    )
    phases = [
        Phase("pretrain", [BUNDLED_DATA / "pretrain.json"], pre),
        Phase("chat", [BUNDLED_DATA / "chat.json"], chat, assistant_only=True),
    ]
    texts = [t for phase in phases for f in phase.files for t in load_examples(f)]
    return RunOptions(
        phases=phases,
        val=BUNDLED_DATA / "chat_val.json",
        tokenizer="caseless",
        vocab_size=CaselessWordTokenizer.vocabulary_size(texts, min_count=2),
        model={"n_heads": 4},
        output=output,
        seed=seed,
    )


def checkpoint_path(output: Path) -> Path:
    return output.with_name(output.stem + ".ckpt.safetensors")


def _sibling(output: Path, suffix: str) -> Path:
    return output.with_name(output.stem + suffix)


def _new_or_resumed(
    opts: RunOptions, texts: Callable[[], Iterable[str]], kind: str, defaults: dict
):
    """A fresh model (tokenizer built from `texts()`), or the one in `opts.resume`
    -> (model, optimizer state or None, trainer state or {})."""
    if opts.resume is not None:
        model, opt_state, state = load_checkpoint(opts.resume)
        _check_resumable(opts, state)
        logger.info(
            "resuming %s at update %d (phase %s)", opts.resume, state["step"], state["phase"]
        )
        return model, opt_state, state
    tokenizer = build_tokenizer(opts.tokenizer or kind, texts(), opts.vocab_size)
    cfg = ModelConfig.from_dict({**defaults, **opts.model, "vocab_size": tokenizer.vocab_size})
    return Model(cfg, tokenizer, seed=opts.seed), None, {}


def _check_resumable(opts: RunOptions, state: dict) -> None:
    """A checkpoint continues only the kind of run that wrote it: say what to pass instead."""
    ckpt, phase = opts.resume, state.get("phase")
    keys = {"step": int, "phase": str, **({"rng": dict} if phase == "corpus" else {"epoch": int})}
    for key, kind in keys.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise ModelFileFormatError(f"{ckpt}: trainer_state has no valid {key!r}")
    if opts.corpus is not None and phase != "corpus":
        raise ConfigError(
            f"{ckpt} is a checkpoint of example-set training (phase {phase!r}): resume it with "
            "the --pretrain/--chat files it was trained on, not --corpus"
        )
    names = [p.name for p in opts.phases]
    if opts.corpus is None and phase == "corpus":
        raise ConfigError(
            f"{ckpt} is a checkpoint of corpus training: resume it with --corpus and the same "
            "text file, not --pretrain/--chat"
        )
    if opts.corpus is None and phase not in names:
        raise ConfigError(
            f"{ckpt} stopped in the {phase!r} phase, but this command has no --{phase} files: "
            f"pass the --pretrain/--chat files it was trained on"
        )


def _output_folder(output: Path) -> None:
    with os_errors(output.parent, WriteError, "create the output folder"):
        output.parent.mkdir(parents=True, exist_ok=True)


def _finish(model, opts: RunOptions, metrics: MetricsLog, description: str) -> None:
    """The end of every run: the model file, then the loss plot (the metrics file is written as
    training goes), by rank 0 alone. A plot that cannot be written is a warning: the model is
    saved already."""
    if not get_world().is_root:
        return
    model.save(opts.output, description=description)
    if opts.verbose:
        print(f"saved the model to {opts.output}")
    try:
        plot_metrics(metrics.rows, _sibling(opts.output, ".loss.png"))
    except WriteError as e:
        logger.warning("%s; the model is saved, only the loss plot is missing", e)


def train_examples(opts: RunOptions) -> Model:
    """The seed's job: build the vocabulary, show the answer to a question, pre-train on facts,
    instruction-tune on chat, show the answer again, save the model."""
    root, threads = get_world().is_root, threads_per_process(opts.threads)
    texts = {p.name: [t for f in p.files for t in load_examples(f)] for p in opts.phases}
    val = load_examples(opts.val) if opts.val is not None else None
    _output_folder(opts.output)
    everything = lambda: [t for phase in texts.values() for t in phase]  # noqa: E731
    model, opt_state, state = _new_or_resumed(opts, everything, "word", {})
    question = chat_format.prompt([], opts.question)
    say = root and opts.verbose
    if not state and say:
        print(
            f"vocabulary: {model.tokenizer.vocab_size} tokens; model: {model.num_parameters:,} parameters"
        )
        print(f"before training: {opts.question!r} -> {answer(model, question)!r}")
    metrics = MetricsLog(_sibling(opts.output, ".metrics.jsonl") if root else None)
    names = [p.name for p in opts.phases]
    first = names.index(state["phase"]) if state else 0
    for i, phase in enumerate(opts.phases[first:], start=first):
        resuming = bool(state) and i == first
        start_epoch = state["epoch"] if resuming else 0
        if start_epoch >= phase.train.epochs:
            continue
        tc = replace(phase.train, seed=opts.seed)
        trainer = Trainer(model, tc, metrics, threads, opts.label)
        if resuming:
            trainer.resume(opt_state, state)
        batcher = text_batcher(
            model.tokenizer,
            texts[phase.name],
            phase.train.batch_size,
            model.config.max_seq_len,
            opts.seed,
            phase.assistant_only,
        )
        if say:
            print(f"{phase.name}: {len(texts[phase.name])} examples, {phase.train.epochs} epochs")
        held_out = val and phase.name == "chat"  # the phase the held-out file is for
        trainer.fit_examples(
            phase.name,
            batcher,
            evaluate=held_out_scores(model, val, phase.assistant_only) if held_out else None,
            checkpoint=checkpoint_path(opts.output),
            start_epoch=start_epoch,
        )
    if say:
        print(f"after training: {opts.question!r} -> {answer(model, question)!r}")
        held_out_name = f"the held-out {opts.val.name}" if opts.val else ""
        chat = texts.get("chat") or []
        seen = chat[:: max(1, len(chat) // 500)][:500]  # all of a large set takes long to answer
        for name, examples in (("the chat set", seen), (held_out_name, val)):
            if examples:
                score, _ = exact_answer_score(model, examples)
                part = f" ({len(seen)} of {len(chat)} examples)" if examples is seen else ""
                print(f"exact answers on {name}: {score:.1%}{part}")
    _finish(model, opts, metrics, "scratchlm run")
    return model


def held_out_scores(
    model, examples: list[str], answers_only: bool, scored: int = VAL_SCORED
) -> Callable[[dict], dict]:
    """-> a function giving the model's loss (counted as in training: on the answers only, or on
    every token) and exact-answer score on a fixed sample of `scored` held-out `examples`, spread
    over the file (scoring them all after every epoch would cost a large part of the demo's time;
    the end of the run scores them all)."""
    sample = examples[:: max(1, len(examples) // scored)][:scored]

    def scores(row) -> dict:
        return {
            "val_loss": examples_loss(model, sample, answers_only),
            "val_exact": exact_answer_score(model, sample)[0],
        }

    return scores


def train_corpus(opts: RunOptions) -> Model:
    """Train on a plain-text corpus: tokenize it once into a memory-mapped token file, train on
    random windows from its first 90 % and evaluate on the last 10 %, printing a generated sample
    at every evaluation; `max_minutes` stops cleanly and saves."""
    world, threads = get_world(), threads_per_process(opts.threads)
    _output_folder(opts.output)
    model, opt_state, state = _new_or_resumed(
        opts, lambda: read_corpus(opts.corpus), "char", CORPUS_MODEL
    )
    corpus = world.in_turn(lambda: TokenCorpus.build(opts.corpus, model.tokenizer))
    logger.info(
        "corpus %s: %d train and %d validation tokens; model of %d parameters",
        opts.corpus,
        corpus.n_train_tokens,
        corpus.n_val_tokens,
        model.num_parameters,
    )
    metrics = MetricsLog(_sibling(opts.output, ".metrics.jsonl") if world.is_root else None)
    trainer = Trainer(model, opts.train, metrics, threads, opts.label)
    rng = np.random.default_rng(opts.seed)
    if state:
        trainer.resume(opt_state, state)
        rng.bit_generator.state = state["rng"]

    trainer.fit_corpus(
        corpus,
        opts.seq_len or model.config.max_seq_len,
        rng,
        eval_every=opts.eval_every,
        evaluate=corpus_evaluation(model, corpus, opts, show_sample=opts.verbose),
        max_minutes=opts.max_minutes,
        max_train_s=opts.max_train_s,
        checkpoint=checkpoint_path(opts.output),
    )
    # os.fsdecode gave undecodable bytes of the file name lone surrogates, which no model file can
    # hold: show them as U+FFFD instead.
    name = os.fsencode(opts.corpus.name).decode("utf-8", "replace")
    _finish(model, opts, metrics, f"trained on {name}")
    return model


def corpus_evaluation(
    model, corpus, opts: RunOptions, batches: int = EVAL_BATCHES, show_sample=False
):
    """-> the `evaluate` of corpus training: the mean loss (and perplexity) of the same `batches`
    validation windows every time, then, with `show_sample`, a generated sample printed."""
    seq_len, batch_size = opts.seq_len or model.config.max_seq_len, opts.train.batch_size

    def evaluate(row) -> dict:
        rng = np.random.default_rng(opts.train.seed + 1)  # the same windows every time
        windows = (corpus.sample(batch_size, seq_len, rng, "val") for _ in range(batches))
        val_loss = mean_loss(model, windows)
        if show_sample:
            print(f"--- sample at update {row['step']} (val_loss {val_loss:.4f}) ---")
            print(sample(model), flush=True)
        return {"val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50.0))}

    return evaluate


def sample(model, prompt: str = "\n", temperature: float = 0.8, seed: int = 0) -> str:
    tok = model.tokenizer
    ids = model.generate(
        tok.encode(prompt), max_new_tokens=SAMPLE_TOKENS, temperature=temperature, seed=seed
    )
    return tok.decode(ids)
