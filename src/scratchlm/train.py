"""Training: the update rule, the loops over example sets and corpora, and the two entry points.

Two ways to feed the model, one update rule:
- example sets (`train_examples`: the seed's pre-training and instruction tuning): epochs of
  shuffled, padded whole examples from an `ExampleBatcher`;
- corpora (`train_corpus`: your own text): steps of random fixed-length windows from a
  `TokenCorpus`.

Every update: accumulate gradients over `accum` micro-batches (weighted by their counted tokens, so
the result equals one big batch; parallel.py cuts them into shards for threads and, under mpiexec,
processes; with `dropout` > 0 every row of a micro-batch draws its masks from a generator seeded by
(seed, update, micro-batch, row), so a resumed run, and a run on any number of shards, draws the
same ones), refuse non-finite or anomalous gradients (skip the update with a warning;
`max_bad_steps` in a row raise `TrainingDivergedError`), clip the global gradient norm, take an
AdamW step at the scheduled learning rate. A non-finite or exploding loss stops training at once.

Both entry points take a `RunOptions`, start fresh or `resume` from a checkpoint (the next update
is the one an uninterrupted run would take: same batches, same optimizer moments, same schedule),
write a checkpoint next to the output (`<name>.ckpt.safetensors`, atomically) and `finish` the same
way: the model file, the metrics file (`<name>.metrics.jsonl`) and the loss plot. Under mpiexec
every rank trains on the same global batches and takes the same steps; rank 0 alone logs,
evaluates and writes files (docs/parallel.md).

A held-out chat file (`RunOptions.val`) is read for evaluation only, never for training: the chat
phase records the loss and exact-answer score of a fixed sample of it per epoch (`val_loss`,
`val_exact`), and the run ends by printing the exact-answer scores on the whole chat set and the
whole held-out file.

A checkpoint resumes only with the kind of command that wrote it (example sets with their phase's
files, a corpus with `--corpus`); otherwise a `ConfigError` says what to pass instead. Outputs fail
cleanly: a model or checkpoint that cannot be written is an error and the old file stays; the
metrics and the loss plot are by-products, so failing to write them (a full disk) is a warning and
the run goes on (the next checkpoint write stops it if the disk stays full), and the model, written
first, is never lost to them.
"""

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from importlib.resources import files
from numbers import Real
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import chat_format
from .checks import is_int
from .config import ModelConfig
from .corpus import TokenCorpus, read_corpus
from .errors import ConfigError, ModelFileFormatError, TrainingDivergedError, WriteError
from .evaluate import answer, exact_answer_score, examples_loss, mean_loss
from .examples import Batch, ExampleBatcher, load_examples, text_batcher
from .fileio import append_text, os_errors
from .layers.dropout import Dropout
from .log import log_metrics
from .model import Model
from .modelfile import load_checkpoint, save_checkpoint
from .optim import AdamW, clip_grad_norm, lr_at
from .parallel import DataParallel, get_world, threads_per_process
from .plot import plot_metrics
from .tokenizers import build_tokenizer

logger = logging.getLogger("scratchlm")

BUNDLED_DATA = Path(str(files("scratchlm") / "bundled"))  # package data: works from a wheel too
DEMO_QUESTION = "How do mountains form?"

# The Tiny Shakespeare preset (README), the defaults of corpus training: 3 recursions of a 128-wide
# block, 64-character context. CoPE positions count back at most 15 units; a 64-token window rarely
# needs more, and the smaller table is cheaper. Small batches at a high learning rate give the most
# progress per second here; Adam's beta2 = 0.95 (a shorter memory of the squared gradients, as
# language models usually train) let that rate work: validation loss 1.70 instead of 1.75 after
# 2 minutes, measured (README). The 2-minute budget stops the 2,100 updates at about 2,000, where a
# longer schedule (a higher learning rate for longer) reached a lower loss than one that ends there.
CORPUS_MODEL = {
    "d_model": 128,
    "n_heads": 4,
    "d_ff": 512,
    "depth": 3,
    "max_seq_len": 64,
    "cope_max_pos": 16,
}
CORPUS_TRAIN = {"steps": 2100, "batch_size": 16, "lr": 5e-3, "warmup": 0.02, "beta2": 0.95}
SAMPLE_TOKENS = 200
VAL_SCORED = 100  # held-out examples whose answers are scored after every epoch


@dataclass
class TrainConfig:
    epochs: int = 10  # example sets: passes over the data
    steps: int = 1000  # corpora: optimizer updates
    batch_size: int = 32
    lr: float = 2e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup: float = 0.05  # fraction of all updates spent warming up linearly
    weight_decay: float = 0.0
    beta2: float = 0.999  # Adam's decay rate of the squared-gradient average
    dropout: float = 0.0  # training-only dropout rate (layers/dropout.py); 0: none
    grad_clip: float = 1.0  # global gradient-norm limit (0: no clipping)
    accum: int = 1  # micro-batches per update
    max_grad: float = 1000.0  # an update with max |g| above this is skipped as anomalous
    max_bad_steps: int = 3  # that many skipped updates in a row stop training
    explode_factor: float = 4.0  # a loss this many times the first one stops training
    seed: int = 0

    def __post_init__(self):
        for f in fields(self):  # a TOML file can give any type: check before comparing
            value = getattr(self, f.name)
            number = isinstance(value, Real) and not isinstance(value, bool)
            if f.type is float and (not number or not math.isfinite(value)):
                raise ConfigError(
                    f"training option {f.name} must be a finite number, got {value!r}"
                )
        if not is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"training option seed must be an integer >= 0, got {self.seed!r}")
        for name in ("epochs", "steps", "batch_size", "accum", "max_bad_steps"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ConfigError(
                    f"training option {name} must be a positive integer, got {value!r}"
                )
        for name in ("lr", "max_grad", "explode_factor"):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"training option {name} must be positive, got {getattr(self, name)}"
                )
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("weight_decay and grad_clip must be >= 0 (0: none)")
        if not 0 <= self.warmup < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("warmup must be in [0, 1) and min_lr_ratio in [0, 1]")
        if not 0 < self.beta2 < 1:
            raise ConfigError(f"training option beta2 must be in (0, 1), got {self.beta2}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"training option dropout must be in [0, 1), got {self.dropout}")


class MetricsLog:
    """Appends one JSON object per line to a metrics file (and keeps them for the loss plot).
    A failed write is a warning and stops the file there: training goes on (module docstring)."""

    def __init__(self, path: Path | None):
        self.path, self.rows = path, []

    def write(self, row: dict):
        self.rows.append(row)
        if self.path is not None:
            try:
                append_text(self.path, json.dumps(row) + "\n", WriteError)
            except WriteError as e:
                logger.warning("%s; training goes on without writing more metrics there", e)
                self.path = None


class Trainer:
    """Owns the optimizer and the update rule; `fit_examples` and `fit_corpus` drive it.

    `threads` > 1 computes the shards of each update on that many threads (parallel.py); 1 runs
    them one after another, as a plain loop."""

    def __init__(self, model, tc: TrainConfig, metrics: MetricsLog | None = None, threads: int = 1):
        self.model, self.tc = model, tc
        self.metrics = metrics or MetricsLog(None)
        self.parallel = DataParallel(model, threads)
        self.world = self.parallel.world
        self.opt = AdamW(
            model.params, lr=tc.lr, betas=(0.9, tc.beta2), weight_decay=tc.weight_decay
        )
        self.step = 0  # updates taken in the current phase
        self.bad_in_row = 0
        self.first_loss = None
        self.last_lr = 0.0

    # ------------------------------------------------------------------------------ one update

    def update(self, micro_batches: list[Batch], lr: float) -> dict | None:
        """One optimizer update from `micro_batches` (under mpiexec every rank passes the same
        global ones); None if it was skipped as anomalous. Every rank takes the same decisions
        from the same summed gradient."""
        dropouts = [self._dropout(i) for i in range(len(micro_batches))]
        loss, total, tokens, depth = self.parallel.gradients(micro_batches, dropouts)
        self._check_loss(loss)
        # np.max, not max(): Python's max() drops a NaN or keeps it depending on the order
        worst = float(np.max([np.max(np.abs(g)) for g in total.values()]))
        if not math.isfinite(worst) or worst > self.tc.max_grad:
            self._skip(f"max |grad| = {worst:.3g}")
            return None
        self.bad_in_row = 0
        norm = clip_grad_norm(total, self.tc.grad_clip or None)
        self.opt.step(total, lr=lr)
        self.step += 1
        self.last_lr = lr
        return {"loss": loss, "grad_norm": norm, "tokens": tokens, "depth": depth}

    def _dropout(self, micro_batch: int) -> Dropout | None:
        """The dropout of one micro-batch of the coming update; None when the rate is 0."""
        if not self.tc.dropout:
            return None
        return Dropout(self.tc.dropout, seed=(self.tc.seed, self.step, micro_batch))

    def _check_loss(self, loss: float):
        if not math.isfinite(loss):
            raise TrainingDivergedError(f"the loss became {loss} at update {self.step + 1}")
        if self.first_loss is None:
            self.first_loss = loss
        elif loss > self.tc.explode_factor * self.first_loss:
            raise TrainingDivergedError(
                f"the loss exploded from {self.first_loss:.4g} to {loss:.4g} at update "
                f"{self.step + 1}; try a lower learning rate"
            )

    def _skip(self, why: str):
        self.bad_in_row += 1
        logger.warning("skipped update %d: anomalous gradient (%s)", self.step + 1, why)
        if self.bad_in_row >= self.tc.max_bad_steps:
            raise TrainingDivergedError(
                f"{self.bad_in_row} anomalous gradients in a row ({why}); training stopped, "
                "the last checkpoint is intact"
            )

    def resume(self, opt_state: dict, state: dict) -> None:
        """Continue from a checkpoint's optimizer state and trainer state (`load_checkpoint`)."""
        self.opt.load_state_dict(opt_state)
        self.step = state["step"]

    def lr(self, total_updates: int) -> float:
        tc = self.tc
        return lr_at(  # the update about to be taken is number step + 1
            self.step + 1,
            max_lr=tc.lr,
            min_lr=tc.lr * tc.min_lr_ratio,
            warmup_steps=int(tc.warmup * total_updates),
            total_steps=total_updates,
        )

    # ------------------------------------------------------------------------------ example sets

    def fit_examples(
        self,
        phase: str,
        batcher: ExampleBatcher,
        validate: Callable[[], dict] | None = None,
        checkpoint: Path | None = None,
        start_epoch: int = 0,
        on_epoch: Callable[[int, dict], None] | None = None,
    ) -> list[dict]:
        """Train `tc.epochs` epochs (from `start_epoch` when resuming); one log line per epoch.
        validate: held-out figures to add to each epoch's line (e.g. `val_loss`)."""
        tc = self.tc
        updates_per_epoch = -(-len(batcher) // tc.accum)
        total = tc.epochs * updates_per_epoch
        rows = []
        bar = _progress(total, self.step, phase, self.world.is_root)
        for epoch in range(start_epoch, tc.epochs):
            t0 = time.perf_counter()
            results = []
            for group in _groups(batcher.batches(epoch), tc.accum):
                results.append(self.update(group, self.lr(total)))
                bar.update(1)
            row = self._summary(
                phase, epoch + 1, [r for r in results if r], time.perf_counter() - t0
            )
            rows.append(row)
            if not self.world.is_root:
                continue  # the others go on, and wait for rank 0 at the next update
            if validate is not None:
                row.update(validate())
            self._report(row)
            if checkpoint is not None:
                self.save(checkpoint, {"phase": phase, "epoch": epoch + 1})
            if on_epoch is not None:
                on_epoch(epoch + 1, row)
        bar.close()
        return rows

    # ------------------------------------------------------------------------------ corpora

    def fit_corpus(
        self,
        corpus: TokenCorpus,
        seq_len: int,
        rng: np.random.Generator,
        eval_every: int = 100,
        eval_batches: int = 10,
        max_minutes: float | None = None,
        checkpoint: Path | None = None,
        on_eval: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Train until `tc.steps` updates (counting those already taken when resuming) or the
        wall-clock budget (rank 0's clock); evaluate every `eval_every` updates and at the end."""
        tc = self.tc
        deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
        rows, pending, t0 = [], [], time.perf_counter()
        bar = _progress(tc.steps, self.step, "corpus", self.world.is_root)
        while self.step < tc.steps:
            group = [corpus.sample(tc.batch_size, seq_len, rng) for _ in range(tc.accum)]
            result = self.update(group, self.lr(tc.steps))
            bar.update(1)
            if result:
                pending.append(result)
            out_of_time = deadline is not None and self.world.root_decides(
                time.monotonic() >= deadline
            )
            if self.step % eval_every == 0 or self.step == tc.steps or out_of_time:
                row = self._summary("corpus", None, pending, time.perf_counter() - t0)
                rows.append(row)
                if self.world.is_root:  # the others go on, and wait for rank 0 at the next update
                    self._evaluate_and_save(row, corpus, seq_len, eval_batches, checkpoint, rng)
                    if on_eval is not None:
                        on_eval(row)
                pending, t0 = [], time.perf_counter()
            if out_of_time:
                logger.info("stopping at the time budget of %s minutes", max_minutes)
                break
        bar.close()
        return rows

    def _evaluate_and_save(self, row, corpus, seq_len, eval_batches, checkpoint, rng):
        eval_rng = np.random.default_rng(self.tc.seed + 1)  # the same windows every time
        row["val_loss"] = mean_loss(
            self.model,
            (
                corpus.sample(self.tc.batch_size, seq_len, eval_rng, "val")
                for _ in range(eval_batches)
            ),
        )
        row["val_ppl"] = math.exp(min(row["val_loss"], 50.0))
        self._report(row)
        if checkpoint is not None:
            self.save(checkpoint, {"phase": "corpus", "rng": rng.bit_generator.state})

    # ------------------------------------------------------------------------------ bookkeeping

    def _summary(self, phase, epoch, results, seconds) -> dict:
        tokens = sum(r["tokens"] for r in results)
        row = {"phase": phase, "step": self.step}
        if epoch is not None:
            row["epoch"] = epoch
        row["loss"] = sum(r["loss"] * r["tokens"] for r in results) / max(tokens, 1)
        row["grad_norm"] = float(np.mean([r["grad_norm"] for r in results])) if results else 0.0
        row["lr"] = self.last_lr
        row["tokens_per_s"] = tokens / max(seconds, 1e-9)
        if self.model.config.adaptive_depth and results:  # recursion steps each token used
            depth = np.array([d for r in results for d in r["depth"]])  # (n, 4)
            row["depth_mean"] = float(depth[:, 0] @ depth[:, 1] / depth[:, 0].sum())
            row["depth_min"], row["depth_max"] = int(depth[:, 2].min()), int(depth[:, 3].max())
        return row

    def _report(self, row: dict):
        self.metrics.write(row)
        log_metrics("train", **row)

    def save(self, path: Path, state: dict):
        trainer_state = {"step": self.step, "seed": self.tc.seed, "train_config": asdict(self.tc)}
        save_checkpoint(path, self.model, self.opt.state_dict(), {**trainer_state, **state})


def _progress(total: int, done: int, what: str, show: bool = True):
    """A progress bar on a terminal (stderr); nothing when the output goes to a file or pipe."""
    return tqdm(
        total=total,
        initial=done,
        desc=what,
        unit="update",
        leave=False,
        disable=None if show else True,
    )


def _groups(batches: Iterable[Batch], size: int) -> Iterator[list[Batch]]:
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


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
    threads: int | None = None  # threads per process (None: its share of the cores); parallel.py


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
    if not state and root:
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
        trainer = Trainer(model, replace(phase.train, seed=opts.seed), metrics, threads)
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
        if root:
            print(f"{phase.name}: {len(texts[phase.name])} examples, {phase.train.epochs} epochs")
        held_out = val and phase.name == "chat"  # the phase the held-out file is for
        trainer.fit_examples(
            phase.name,
            batcher,
            validate=held_out_scores(model, val, phase.assistant_only) if held_out else None,
            checkpoint=checkpoint_path(opts.output),
            start_epoch=start_epoch,
        )
    if root:
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
) -> Callable[[], dict]:
    """-> a function giving the model's loss (counted as in training: on the answers only, or on
    every token) and exact-answer score on a fixed sample of `scored` held-out `examples`, spread
    over the file (scoring them all after every epoch would cost a large part of the demo's time;
    the end of the run scores them all)."""
    sample = examples[:: max(1, len(examples) // scored)][:scored]

    def scores() -> dict:
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
    trainer = Trainer(model, opts.train, metrics, threads)
    rng = np.random.default_rng(opts.seed)
    if state:
        trainer.resume(opt_state, state)
        rng.bit_generator.state = state["rng"]

    def show_sample(row):
        print(f"--- sample at update {row['step']} (val_loss {row['val_loss']:.4f}) ---")
        print(sample(model), flush=True)

    trainer.fit_corpus(
        corpus,
        opts.seq_len or model.config.max_seq_len,
        rng,
        eval_every=opts.eval_every,
        max_minutes=opts.max_minutes,
        checkpoint=checkpoint_path(opts.output),
        on_eval=show_sample,
    )
    # os.fsdecode gave undecodable bytes of the file name lone surrogates, which no model file can
    # hold: show them as U+FFFD instead.
    name = os.fsencode(opts.corpus.name).decode("utf-8", "replace")
    _finish(model, opts, metrics, f"trained on {name}")
    return model


def sample(model, prompt: str = "\n", temperature: float = 0.8, seed: int = 0) -> str:
    tok = model.tokenizer
    ids = model.generate(
        tok.encode(prompt), max_new_tokens=SAMPLE_TOKENS, temperature=temperature, seed=seed
    )
    return tok.decode(ids)
