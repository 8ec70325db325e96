"""The small models of the tests, made in ONE place: `small_model`.

A fresh initialisation keeps some parameters near zero (the CoPE tables, positions, the head, the
halting unit) and sets every norm and residual scale alike, so paths through them would carry
little signal and a wrong gradient there could hide. `perturbed=True` moves every parameter away
from its initialisation; `loud` redraws the parameters whose names end in one of its strings from a
standard normal. The gradient checks' precondition for CoPE (no position near an integer, where
floor and ceil switch) is `positions_clear(cope_positions(...))`.
"""

import numpy as np

from scratchlm import Model, ModelConfig
from scratchlm.tokenizers import build_tokenizer

# The sizes of the gradient checks: every loop runs a few times, every array stays small.
TINY = {"d_model": 8, "n_heads": 2, "d_ff": 12, "max_seq_len": 8, "cope_max_pos": 6}


def small_model(
    config, seed=0, *, perturbed=False, loud=(), dtype="float64", tokenizer=None
) -> Model:
    """A model of `config` (a ModelConfig, or a dict of its fields) in `dtype`, from `seed`."""
    cfg = config if isinstance(config, ModelConfig) else ModelConfig(**config)
    model = Model(cfg, tokenizer, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():
        if perturbed and name.endswith(("alpha", "scale")):
            p[...] = rng.uniform(0.5, 1.5, p.shape)
        elif perturbed and name.endswith(("gamma", "beta", "cope", "head.w")):
            p[...] = rng.standard_normal(p.shape) * 0.5 + (1.0 if name.endswith("gamma") else 0.0)
        elif perturbed:
            p += rng.standard_normal(p.shape) * 0.3 * p.std()
        if name.endswith(tuple(loud)):
            p[...] = rng.standard_normal(p.shape)
    return model


def cope_positions(model, ids, dropout=None):
    """The CoPE positions p_ij (causal entries) of every recursion step, recomputed from the q and
    k in the forward caches (step cache -> attention cache -> its queries and keys); dropout: a
    `Dropout` for the forward pass, or None."""
    rec = model.forward(ids, dropout=dropout)[1].blocks
    step_caches = [step.block for step in rec.steps] if model.config.adaptive_depth else rec
    out = []
    for step in step_caches:
        c = step.attn.core  # every query and key of the step
        s = c.q @ c.k.swapaxes(-1, -2) / np.sqrt(c.q.shape[-1])
        g = np.where(np.tri(s.shape[-1], dtype=bool), 1 / (1 + np.exp(-s)), 0.0)
        out.append(np.flip(np.cumsum(np.flip(g, -1), -1), -1)[g > 0])
    return out


def positions_clear(positions, P, margin=2e-4):
    """No position within `margin` of an integer or of the clamp at P - 1."""
    for p in positions:
        free = p[p < P - 1 + margin]
        if (free > P - 1 - margin).any() or np.abs(free - np.round(free)).min() <= margin:
            return False
    return True


WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "User:", "Assistant:", "hi", "hello"]


def word_model(never_ends=False) -> Model:
    """A tiny float32 model with a word tokenizer of a dozen words, for the command line's tests.
    never_ends: its greedy answer is "cat cat cat ..." forever (the final norm outputs all ones,
    so the logits are head.w's column sums)."""
    tok = build_tokenizer("word", [" ".join(WORDS)])
    config = dict(vocab_size=tok.vocab_size, d_model=16, n_heads=2, d_ff=32, max_seq_len=24)
    model = small_model(config, 0, dtype="float32", tokenizer=tok)
    if never_ends:
        model.params["norm_f.gamma"][:] = 0.0
        model.params["norm_f.beta"][:] = 1.0
        model.params["head.w"][:] = 0.0
        model.params["head.w"][:, tok.encode("cat")[0]] = 1.0
    return model
