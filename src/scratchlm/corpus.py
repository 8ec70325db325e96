"""Training on your own text: `scratchlm train --corpus FILE.txt [--tokenizer char|bpe|word]`.

The corpus is tokenized once into a memory-mapped token file (data.TokenCorpus); training samples
random windows from its first 90 % and evaluates on the last 10 %, printing a generated sample at
every evaluation. A checkpoint is written at each evaluation; `--resume` continues from it with the
same random windows an uninterrupted run would have drawn; `--max-minutes` stops cleanly and saves.

The model defaults here are the Tiny Shakespeare preset of the README (character level).
"""

import logging

import numpy as np

from .config import ModelConfig
from .data import TokenCorpus, read_corpus
from .model import Model
from .modelfile import load_checkpoint, save_model
from .pipeline import checkpoint_path
from .plot import plot_metrics
from .tokenizers import build_tokenizer
from .train import MetricsLog, TrainConfig, Trainer

logger = logging.getLogger("scratchlm")

# The Tiny Shakespeare preset (README): 3 recursions of a 128-wide block, 64-character context.
# CoPE positions count back at most 15 units; a 64-token window rarely needs more, and the smaller
# table is cheaper. Small batches at a high learning rate give the most progress per second here.
CORPUS_MODEL = {
    "d_model": 128,
    "n_heads": 4,
    "d_ff": 512,
    "depth": 3,
    "max_seq_len": 64,
    "cope_max_pos": 16,
}
CORPUS_TRAIN = {"steps": 1400, "batch_size": 16, "lr": 4e-3}
SAMPLE_TOKENS = 200


def train_on_corpus(args, model_cfg: dict, tc: TrainConfig) -> Model:
    output, state = args.output, None
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.resume is not None:
        model, opt_state, state = load_checkpoint(args.resume)
        tokenizer = model.tokenizer
        logger.info("resuming %s at update %d", args.resume, state["step"])
    else:
        tokenizer = build_tokenizer(
            args.tokenizer or "char", read_corpus(args.corpus), args.vocab_size
        )
        cfg = ModelConfig.from_dict(
            {**CORPUS_MODEL, **model_cfg, "vocab_size": tokenizer.vocab_size}
        )
        model = Model(cfg, tokenizer, seed=args.seed)
    corpus = TokenCorpus.build(args.corpus, tokenizer)
    logger.info(
        "corpus %s: %d train and %d validation tokens; model of %d parameters",
        args.corpus,
        corpus.n_train_tokens,
        corpus.n_val_tokens,
        model.num_parameters,
    )
    metrics = MetricsLog(output.with_name(output.stem + ".metrics.jsonl"))
    trainer = Trainer(model, tc, metrics)
    rng = np.random.default_rng(args.seed)
    if state is not None:
        trainer.opt.load_state_dict(opt_state)
        trainer.step = state["step"]
        rng.bit_generator.state = state["rng"]

    def show_sample(row):
        print(f"--- sample at update {row['step']} (val_loss {row['val_loss']:.4f}) ---")
        print(sample(model), flush=True)

    trainer.fit_corpus(
        corpus,
        args.seq_len or model.config.max_seq_len,
        rng,
        eval_every=args.eval_every,
        max_minutes=args.max_minutes,
        checkpoint=checkpoint_path(output),
        on_eval=show_sample,
    )
    save_model(output, model, description=f"trained on {args.corpus.name}")
    plot_metrics(metrics.rows, output.with_name(output.stem + ".loss.png"))
    print(f"saved the model to {output}")
    return model


def sample(model, prompt: str = "\n", temperature: float = 0.8, seed: int = 0) -> str:
    tok = model.tokenizer
    ids = model.generate(
        tok.encode(prompt), max_new_tokens=SAMPLE_TOKENS, temperature=temperature, seed=seed
    )
    return tok.decode(ids)
