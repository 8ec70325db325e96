"""The parameter table: every tensor of the model with its shape, initialisation, weight decay and
role, in ONE place. `param_shapes`, `init_params`, the optimizer's weight decay and the fused
weights of the block are all read from it.

The parameters are a flat dict `name -> ndarray`, row-major, `y = x @ W` with `W` of shape
(in, out) (docs/design.md, section 2). Two groups of matrices read the same input, so the forward
pass multiplies them as one fused array, the matrices stacked along a new first axis:
`[wq, wk, wv]` (3, d, d) and `[w1, w3]` (2, d, d_ff). `fuse` builds these once per forward call;
`unfuse` splits their gradients back into the table's names.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .config import ModelConfig


@dataclass(frozen=True)
class Param:
    name: str
    shape: Callable[[ModelConfig], tuple[int, ...]]
    init: Callable[[ModelConfig, np.random.Generator, tuple[int, ...]], np.ndarray]
    decay: bool  # does AdamW's weight decay pull it towards zero?
    role: str
    present: Callable[[ModelConfig], bool] = lambda cfg: True


# ------------------------------------------------------------------------------ initialisers
# DyT does not rescale its input, so the residual stream starts at unit scale: embeddings ~ N(0, 1)
# (positions at 0.1 so that tokens dominate), where tanh(0.5 x) is in its useful range. Every matrix
# reading the stream is N(0, 1/fan_in) so activations keep their scale. The two matrices that WRITE
# into the stream (attn.wo, ffn.w2) are further divided by sqrt(2 * steps): the 2 * steps residual
# branches then add up to a bounded variance however deep the recursion (the GPT-2 trick). The
# output head is small (std 0.02) so the first loss is ln(V): a uniform guess.


def normal(std: float):
    return lambda cfg, rng, shape: rng.standard_normal(shape) * std


def fan_in(cfg, rng, shape):
    return rng.standard_normal(shape) * (1.0 / np.sqrt(shape[0]))


def residual_out(cfg, rng, shape):
    return rng.standard_normal(shape) * (1.0 / np.sqrt(2 * cfg.n_steps) / np.sqrt(shape[0]))


def constant(value: Callable[[ModelConfig], float]):
    return lambda cfg, rng, shape: np.full(shape, value(cfg), dtype=np.float64)


zeros = constant(lambda cfg: 0.0)
ones = constant(lambda cfg: 1.0)

# Weight decay is a useful prior for the big matrices, but wrong for parameters whose natural value
# is not zero (the norms' gains and steepness, the per-step residual scales, the halting bias) and
# for lookup tables that only see a few rows per step (embeddings, CoPE positions): decaying those
# would shrink rarely seen rows for no reason.


def _dyt(prefix: str, where: str) -> list[Param]:
    d = lambda cfg: (cfg.d_model,)  # noqa: E731
    alpha = constant(lambda cfg: cfg.dyt_alpha_init)
    return [
        Param(f"{prefix}.alpha", lambda cfg: (1,), alpha, False, f"DyT steepness {where}"),
        Param(f"{prefix}.gamma", d, ones, False, f"DyT gain {where}"),
        Param(f"{prefix}.beta", d, zeros, False, f"DyT shift {where}"),
    ]


def _square(cfg):
    return (cfg.d_model, cfg.d_model)


def _steps(cfg):
    return (cfg.n_steps,)


def _adaptive(cfg):
    return cfg.adaptive_depth


_scale_init = constant(lambda cfg: cfg.residual_scale_init)

PARAMS: tuple[Param, ...] = (
    Param("tok_emb", lambda c: (c.vocab_size, c.d_model), normal(1.0), False, "token embedding"),
    Param(
        "pos_emb",
        lambda c: (c.max_seq_len, c.d_model),
        normal(0.1),
        False,
        "learned absolute positions",
        present=lambda c: c.learned_pos,
    ),
    *_dyt("block.norm1", "before attention"),
    Param("block.attn.wq", _square, fan_in, True, "query projection"),
    Param("block.attn.wk", _square, fan_in, True, "key projection"),
    Param("block.attn.wv", _square, fan_in, True, "value projection"),
    Param("block.attn.wo", _square, residual_out, True, "attention output projection"),
    Param(
        "block.attn.cope",
        lambda c: (c.n_heads, c.cope_max_pos, c.d_head),
        normal(0.02),
        False,
        "CoPE position embeddings, one table per head",
    ),
    *_dyt("block.norm2", "before the feed-forward network"),
    Param("block.ffn.w1", lambda c: (c.d_model, c.d_ff), fan_in, True, "SwiGLU gate projection"),
    Param("block.ffn.w3", lambda c: (c.d_model, c.d_ff), fan_in, True, "SwiGLU up projection"),
    Param("block.ffn.w2", lambda c: (c.d_ff, c.d_model), residual_out, True, "SwiGLU down"),
    Param("block.attn_scale", _steps, _scale_init, False, "per-step attention residual scale"),
    Param("block.ffn_scale", _steps, _scale_init, False, "per-step feed-forward residual scale"),
    Param("block.halt.w", lambda c: (c.d_model,), zeros, True, "halting unit", _adaptive),
    Param("block.halt.b", lambda c: (1,), zeros, False, "halting bias", _adaptive),
    *_dyt("norm_f", "before the output head"),
    Param("head.w", lambda c: (c.d_model, c.vocab_size), normal(0.02), True, "output projection"),
)

# A fused array -> the parameters stacked in it (along a new first axis).
FUSED: dict[str, tuple[str, ...]] = {
    "block.attn.w_qkv": ("block.attn.wq", "block.attn.wk", "block.attn.wv"),
    "block.ffn.w13": ("block.ffn.w1", "block.ffn.w3"),
}


def model_params(cfg: ModelConfig) -> list[Param]:
    """The table's rows this configuration has (no `pos_emb` without learned positions, no
    halting unit at fixed depth)."""
    return [p for p in PARAMS if p.present(cfg)]


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape for this configuration."""
    return {p.name: p.shape(cfg) for p in model_params(cfg)}


def init_params(cfg: ModelConfig, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
    """Fresh parameters; random draws in table order, so a seed always gives the same model."""
    return {p.name: p.init(cfg, rng, p.shape(cfg)).astype(dtype) for p in model_params(cfg)}


_DECAYED = frozenset(p.name for p in PARAMS if p.decay)


def decays(name: str) -> bool:
    """Whether AdamW's weight decay applies to the parameter `name`."""
    return name in _DECAYED


def fuse(params: dict[str, np.ndarray], side_by_side: bool = False) -> dict[str, np.ndarray]:
    """The parameters with each `FUSED` group replaced by its stacked array (a copy), shape
    (k, n_in, n_out) either way. In memory the k matrices lie one after another, or with
    `side_by_side` row by row next to each other, as the one matrix [w_0 | w_1 | ...] (n_in, k n_out):
    stacked_linear_forward then multiplies by that matrix in ONE product. That is what decoding a
    token at a time wants (measured: 23 us instead of 40 for [w1, w3] of the large config), while
    training wants each product's output as its own contiguous array."""
    w = {name: value for name, value in params.items() if not _is_fused_part(name)}
    for fused, parts in FUSED.items():
        if side_by_side:
            w[fused] = np.stack([params[name] for name in parts], axis=1).transpose(1, 0, 2)
        else:
            w[fused] = np.stack([params[name] for name in parts])
    return w


def unfuse(grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gradients keyed like `fuse`'s output -> keyed like the parameters (fused ones split)."""
    out = {name: g for name, g in grads.items() if name not in FUSED}
    for fused, parts in FUSED.items():
        for name, g in zip(parts, grads[fused], strict=True):
            out[name] = g
    return out


def _is_fused_part(name: str) -> bool:
    return any(name in parts for parts in FUSED.values())
