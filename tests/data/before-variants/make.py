"""Writes this folder's files with the code of commit 62f926a (see README.md):

PYTHONPATH=<a checkout of 62f926a>/src python make.py tests/data/before-variants
"""

import json
import sys
from pathlib import Path

import numpy as np

from scratchlm import Model, ModelConfig
from scratchlm.examples import text_batcher
from scratchlm.modelfile import load_checkpoint
from scratchlm.tokenizers import build_tokenizer
from scratchlm.train import TrainConfig, Trainer

TEXTS = ["the sun is a star . </s>", "water is wet and cold . </s>", "a cat is an animal . </s>"]
CASES = {
    "fixed": dict(d_model=16, n_heads=2, d_ff=24, depth=2, max_seq_len=16, cope_max_pos=6),
    "adaptive": dict(
        d_model=16,
        n_heads=4,
        d_ff=24,
        max_seq_len=16,
        cope_max_pos=6,
        adaptive_depth=True,
        max_depth=3,
        learned_pos=False,
    ),
}


def main(out: Path):
    tok = build_tokenizer("word", TEXTS)
    ids = np.array([tok.encode("the sun is wet . a cat")])
    expected = {"ids": ids.tolist()}
    for name, fields in CASES.items():
        model = Model(ModelConfig(vocab_size=tok.vocab_size, **fields), tok, seed=7)
        trainer = Trainer(model, TrainConfig(epochs=2, lr=1e-2, batch_size=3))
        ckpt = out / f"{name}.ckpt.safetensors" if name == "fixed" else None
        trainer.fit_examples("pre", text_batcher(tok, TEXTS, 3, 16, 0), checkpoint=ckpt)
        for ext in (".safetensors", ".json"):
            model.save(out / f"{name}{ext}")
        expected[name] = model.logits(ids).tolist()
    (out / "expected_logits.json").write_text(json.dumps(expected))
    # A third epoch, resumed from the checkpoint.
    model, opt_state, state = load_checkpoint(out / "fixed.ckpt.safetensors")
    trainer = Trainer(model, TrainConfig(epochs=3, lr=1e-2, batch_size=3))
    trainer.resume(opt_state, state)
    batcher = text_batcher(model.tokenizer, TEXTS, 3, 16, 0)
    trainer.fit_examples("pre", batcher, start_epoch=state["epoch"])
    model.save(out / "fixed-resumed.safetensors")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
