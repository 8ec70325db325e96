"""The seed's whole job, shared by `scratchlm run` (bundled corpus, tuned defaults) and
`scratchlm train` (your files and options): build the vocabulary, show the answer to a question,
pre-train on facts, instruction-tune on chat, show the answer again, save the model.

Checkpoints go next to the output (`<name>.ckpt.safetensors`) after every epoch; `resume` continues
from one exactly where it stopped (same batches, same optimizer moments, same schedule).
"""

import logging
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path

from .config import ModelConfig
from .data import ExampleBatcher, assistant_loss_start, load_examples
from .evaluate import answer, chat_prompt, exact_answer_score
from .model import Model
from .modelfile import load_checkpoint, save_model
from .plot import plot_metrics
from .tokenizers import build_tokenizer
from .train import MetricsLog, TrainConfig, Trainer

logger = logging.getLogger("scratchlm")

BUNDLED_DATA = Path(str(files("scratchlm") / "bundled"))  # package data: works from a wheel too
DEMO_QUESTION = "How do mountains form?"


@dataclass
class Phase:
    name: str
    files: list[Path]
    train: TrainConfig
    assistant_only: bool = False


@dataclass
class RunOptions:
    phases: list[Phase]
    output: Path = Path("out/model.safetensors")
    tokenizer: str = "word"
    model: dict = field(default_factory=dict)  # ModelConfig fields other than vocab_size
    seed: int = 0
    question: str = DEMO_QUESTION


def demo_options(output: Path = Path("out/model.safetensors"), seed: int = 0) -> RunOptions:
    """The bundled corpus with the settings tuned for `make demo` (see README)."""
    pre = TrainConfig(epochs=30, batch_size=32, lr=2e-3, warmup=0.05, seed=seed)
    chat = TrainConfig(epochs=60, batch_size=32, lr=2e-3, warmup=0.05, seed=seed)
    return RunOptions(
        phases=[
            Phase("pretrain", [BUNDLED_DATA / "pretrain.json"], pre),
            Phase("chat", [BUNDLED_DATA / "chat.json"], chat),
        ],
        output=output,
        seed=seed,
    )


def checkpoint_path(output: Path) -> Path:
    return output.with_name(output.stem + ".ckpt.safetensors")


def run_pipeline(opts: RunOptions, resume: Path | None = None, say=print) -> Model:
    texts = {p.name: [t for f in p.files for t in load_examples(f)] for p in opts.phases}
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint_path(opts.output)
    state, opt_state = {}, None
    if resume is not None:
        model, opt_state, state = load_checkpoint(resume)
        say(f"resuming {resume}: phase {state['phase']}, epoch {state['epoch']}")
    else:
        all_texts = [t for phase_texts in texts.values() for t in phase_texts]
        tokenizer = build_tokenizer(opts.tokenizer, all_texts)
        cfg = ModelConfig.from_dict({**opts.model, "vocab_size": tokenizer.vocab_size})
        model = Model(cfg, tokenizer, seed=opts.seed)
        say(
            f"vocabulary: {tokenizer.vocab_size} tokens; model: {model.num_parameters:,} parameters"
        )
        say(f"before training: {opts.question!r} -> {answer(model, chat_prompt(opts.question))!r}")
    metrics = MetricsLog(opts.output.with_name(opts.output.stem + ".metrics.jsonl"))
    names = [p.name for p in opts.phases]
    first = names.index(state["phase"]) if state else 0
    for i, phase in enumerate(opts.phases[first:], start=first):
        resuming = bool(state) and i == first
        start_epoch = state["epoch"] if resuming else 0
        if start_epoch >= phase.train.epochs:
            continue
        trainer = Trainer(model, replace(phase.train, seed=opts.seed), metrics)
        if resuming:
            trainer.opt.load_state_dict(opt_state)
            trainer.step = state["step"]
        batcher = _batcher(model, texts[phase.name], phase, opts.seed)
        say(f"{phase.name}: {len(texts[phase.name])} examples, {phase.train.epochs} epochs")
        trainer.fit_examples(phase.name, batcher, checkpoint=ckpt, start_epoch=start_epoch)
    say(f"after training: {opts.question!r} -> {answer(model, chat_prompt(opts.question))!r}")
    chat_texts = texts.get("chat")
    if chat_texts:
        score, _ = exact_answer_score(model, chat_texts)
        say(f"exact answers on the chat set: {score:.1%}")
    save_model(opts.output, model, description="scratchlm run")
    plot_metrics(metrics.rows, opts.output.with_name(opts.output.stem + ".loss.png"))
    say(f"saved the model to {opts.output}")
    return model


def _batcher(model, texts, phase: Phase, seed: int) -> ExampleBatcher:
    tok = model.tokenizer
    starts = [assistant_loss_start(tok, t) for t in texts] if phase.assistant_only else None
    return ExampleBatcher(
        [tok.encode(t) for t in texts],
        phase.train.batch_size,
        model.config.max_seq_len,
        seed=seed,
        pad_id=tok.pad_id,
        loss_start=starts,
    )
