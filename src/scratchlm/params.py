"""The parameter table, assembled from what each part declares, and the per-call view of it.

Every layer declares its own parameters by local name (layers/param.py); this file places them.
The model's parameters are a flat dict `name -> ndarray`, row-major, `y = x @ W` with `W` of shape
(in, out) (docs/design.md, section 2), named `<where>.<local name>`:

    tok_emb, pos_emb                        the embedding (layers/embedding.py)
    block.norm1.*, block.attn.*, ...        the shared block's parts; with `share_weights = false`
    blocks.<s>.norm1.*, ...                 each step s has its own block
    block.attn_scale, block.ffn_scale       per-step residual scales (block.py), both layouts
    block.halt.*                            the halting unit (adaptive depth, act.py)
    norm_f.*, head.w                        the final norm and the output head

`param_table` lists them in ONE order (random draws follow it, so a seed always gives the same
model); `scratchlm info --params` prints it. A forward call does not read the flat dict: it gets
`weights(params, cfg)`, the same arrays grouped by part (`Weights`), with each part's fused groups
stacked once for the whole call (`[wq, wk, wv]` as `w_qkv` (3, d, d), SwiGLU's `[w1, w3]` as
`w13`); `flat_grads` turns gradients in that shape back into the table's names.
"""

import functools
import math
import re
from typing import NamedTuple

import numpy as np

from .act import halt_params
from .block import step_scale_params
from .layers.attention import ATTENTION_FUSED, attention_params
from .layers.embedding import embedding_params
from .layers.param import Param, normal
from .parts import FFNS, NORMS, POSITIONS, Parts, parts_of


class BlockWeights(NamedTuple):
    norm1: dict[str, np.ndarray]
    attn: dict[str, np.ndarray]
    norm2: dict[str, np.ndarray]
    ffn: dict[str, np.ndarray]


class Weights(NamedTuple):
    parts: Parts  # what the weights are for: the config's norm, position scheme and FFN
    embedding: dict[str, np.ndarray]  # tok_emb, pos_emb
    blocks: tuple[
        BlockWeights, ...
    ]  # step s uses blocks[s]: the SAME object at every step if shared
    scales: dict[str, np.ndarray]  # attn_scale, ffn_scale (S,)
    halt: dict[str, np.ndarray]  # w, b (adaptive depth; empty otherwise)
    norm_f: dict[str, np.ndarray]
    head: dict[str, np.ndarray]  # w


def head_params(cfg) -> dict[str, Param]:
    # Small (std 0.02), so that the first loss is ln(V): a uniform guess.
    return {"w": Param((cfg.d_model, cfg.vocab_size), normal(0.02), True, "output projection")}


class Group(NamedTuple):
    """One part's parameters: where they go in `Weights`, their name prefix, their table."""

    where: tuple  # ("embedding",), ("blocks", s, "attn"), ("norm_f",), ...
    prefix: str  # "" or "block.attn" ...: name = prefix + "." + local name
    params: dict[str, Param]
    fused: dict[str, tuple[str, ...]]

    @property
    def names(self) -> dict[str, str]:
        """local name -> the parameter's name."""
        return {local: _name(self.prefix, local) for local in self.params}


def block_prefixes(cfg) -> list[str]:
    """The name prefix of each distinct block: one shared block, or one per step."""
    return ["block"] if cfg.share_weights else [f"blocks.{s}" for s in range(cfg.depth)]


@functools.lru_cache(maxsize=64)
def groups(cfg) -> tuple[Group, ...]:
    """Every part's parameters, in the table's order."""
    parts = parts_of(cfg)
    norm = lambda where, prefix: Group(where, prefix, parts.norm.params(cfg), parts.norm.fused)  # noqa: E731
    out = [Group(("embedding",), "", embedding_params(cfg), {})]
    for s, prefix in enumerate(block_prefixes(cfg)):
        attn = attention_params(cfg, parts.position)
        out += [
            norm(("blocks", s, "norm1"), f"{prefix}.norm1"),
            Group(("blocks", s, "attn"), f"{prefix}.attn", attn, ATTENTION_FUSED),
            norm(("blocks", s, "norm2"), f"{prefix}.norm2"),
            Group(("blocks", s, "ffn"), f"{prefix}.ffn", parts.ffn.params(cfg), parts.ffn.fused),
        ]
    out.append(Group(("scales",), "block", step_scale_params(cfg), {}))
    if cfg.adaptive_depth:
        out.append(Group(("halt",), "block.halt", halt_params(cfg), {}))
    out += [norm(("norm_f",), "norm_f"), Group(("head",), "head", head_params(cfg), {})]
    return tuple(out)


def _name(prefix: str, local: str) -> str:
    return f"{prefix}.{local}" if prefix else local


def param_table(cfg) -> dict[str, Param]:
    """name -> Param for every parameter of this configuration, in the order of the draws."""
    return {_name(g.prefix, local): p for g in groups(cfg) for local, p in g.params.items()}


def param_shapes(cfg) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape for this configuration."""
    return {name: p.shape for name, p in param_table(cfg).items()}


def num_parameters(cfg) -> int:
    return sum(math.prod(shape) for shape in param_shapes(cfg).values())


def init_params(cfg, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
    """Fresh parameters; random draws in table order, so a seed always gives the same model."""
    return {name: p.init(rng, p.shape).astype(dtype) for name, p in param_table(cfg).items()}


# ----------------------------------------------------------------------------- weight decay


@functools.cache
def _decayed() -> frozenset[str]:
    """The names (distinct blocks written as the shared one's) that any variant decays."""
    from .config import ModelConfig  # late: config.py validates names against parts.py

    names = set()
    for norm in NORMS:
        for position in POSITIONS:
            for ffn in FFNS:
                cfg = ModelConfig(2, 2, 1, 2, norm=norm, position=position, ffn=ffn)
                cfg = ModelConfig(**{**cfg.to_dict(), "adaptive_depth": True})
                names |= {name for name, p in param_table(cfg).items() if p.decay}
    return frozenset(names)


def decays(name: str) -> bool:
    """Whether weight decay pulls the parameter `name` towards zero, in any variant (its `Param`
    says: the matrices do, the norms, scales, embeddings and tables do not)."""
    return re.sub(r"^blocks\.\d+\.", "block.", name) in _decayed()


# ------------------------------------------------------------------------- the per-call view


def _stack(arrays: list[np.ndarray], side_by_side: bool) -> np.ndarray:
    """The arrays stacked along a new first axis (k, n_in, n_out). In memory the k matrices lie
    one after another, or with `side_by_side` row by row next to each other, as the one matrix
    [w_0 | w_1 | ...] (n_in, k n_out): stacked_linear_forward then multiplies by that matrix in ONE
    product. That is what decoding a token at a time wants, while training wants each product's
    output as its own contiguous array."""
    if side_by_side:
        return np.stack(arrays, axis=1).transpose(1, 0, 2)
    return np.stack(arrays)


@functools.lru_cache(maxsize=64)
def _names(cfg) -> tuple[dict[str, str], ...]:
    """Each group's `names`, worked out once per config (forward calls read them every time)."""
    return tuple(g.names for g in groups(cfg))


def _local(params, group: Group, names: dict, side_by_side: bool) -> dict[str, np.ndarray]:
    local = {local: params[name] for local, name in names.items()}
    for fused, names in group.fused.items():
        local[fused] = _stack([local.pop(name) for name in names], side_by_side)
    return local


def weights(params: dict[str, np.ndarray], cfg, side_by_side: bool = False) -> Weights:
    """The parameters grouped by part, fused groups stacked (copies; the rest are the arrays
    themselves). `side_by_side`: the stacking a decoding cache keeps (see `_stack`)."""
    by_where = {
        g.where: _local(params, g, names, side_by_side)
        for g, names in zip(groups(cfg), _names(cfg), strict=True)
    }
    distinct = [
        BlockWeights(*(by_where[("blocks", s, part)] for part in BlockWeights._fields))
        for s in range(len(block_prefixes(cfg)))
    ]
    blocks = tuple(distinct[s if len(distinct) > 1 else 0] for s in range(cfg.n_steps))
    return Weights(
        parts_of(cfg),
        by_where[("embedding",)],
        blocks,
        by_where[("scales",)],
        by_where.get(("halt",), {}),
        by_where[("norm_f",)],
        by_where[("head",)],
    )


def zero_block_grads(w: Weights, per_step: bool = False) -> Weights:
    """Gradients for a backward pass to fill: zeros for what every step adds into (the blocks,
    one set per DISTINCT block, or with `per_step` one set per step; the scales; the halting
    unit); the rest (embedding, final norm, head) is assigned once."""
    zeros = lambda d: {name: np.zeros_like(a) for name, a in d.items()}  # noqa: E731
    distinct = {}
    for s, b in enumerate(w.blocks):
        key = s if per_step else id(b)
        if key not in distinct:
            distinct[key] = BlockWeights(*map(zeros, b))
    keys = range(len(w.blocks)) if per_step else [id(b) for b in w.blocks]
    blocks = tuple(distinct[key] for key in keys)
    return Weights(w.parts, {}, blocks, zeros(w.scales), zeros(w.halt), {}, {})


def flat_grads(grads: Weights, cfg) -> dict[str, np.ndarray]:
    """Gradients grouped like `weights` -> keyed like the parameters (fused groups split)."""
    out = {}
    for g, names in zip(groups(cfg), _names(cfg), strict=True):
        local = _at(grads, g.where)
        for fused, parts in g.fused.items():
            out.update({names[n]: a for n, a in zip(parts, local[fused], strict=True)})
        out.update({names[n]: local[n] for n in g.params if n in local})
    return out


def _at(w: Weights, where: tuple) -> dict[str, np.ndarray]:
    if where[0] == "blocks":
        return getattr(w.blocks[where[1]], where[2])
    return getattr(w, where[0])
