"""Multi-head causal self-attention, with a swappable position scheme.

    q, k, v = split_heads(u Wq), split_heads(u Wk), split_heads(u Wv)     (B, H, T, dh) each
    q, k    = encode(q, positions), encode(k, positions)                  RoPE turns them; others: as is
    o       = attend(q, k, v)                                             per head, causal
    y       = merge_heads(o) Wo

A `Position` names the two places where schemes differ: `encode`, applied to the new queries and
keys before a key/value cache stores them (RoPE), and `attend`, the attention of queries to keys
(CoPE's contextual positions in layers/cope.py; plain softmax attention here, `softmax_attention_*`,
for RoPE and for `NO_POSITION`). A new scheme is a new file with its `Position` and one line in
parts.py. Head h owns the contiguous columns h*dh .. (h+1)*dh-1 of q, k and v.

All heads and the whole batch are handled by (B, H, Tq, Tk) array operations; nothing loops over
tokens or heads. Causal attention never needs the masked upper triangle of the scores, so
`blocked_attention_forward` runs the queries in blocks of QUERY_BLOCK, each block against the keys
up to its own last query only: about half the (T, T) work is skipped at long contexts.

The queries may be the LAST Tq of Tk positions (query i sits at position Tk - Tq + i): with Tq = Tk
this is ordinary self-attention, with Tq < Tk it serves decoding with a key/value cache
(`attention_forward(..., kv=cache)`: the new keys and values are written into the cache and the
queries attend to everything cached). An optional boolean `hide` mask removes further keys (rows of
a cache that hold fewer tokens than others); right padding needs none: causality already keeps real
tokens from seeing the padding after them. Training may drop attention weights (layers/dropout.py):
o = (a * mask) @ v, the mask a constant of the backward pass. Not handled here: attention biases.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .dropout import dropout_backward, dropout_forward
from .linear import (
    linear_backward,
    linear_forward,
    stacked_linear_backward,
    stacked_linear_forward,
)
from .param import Param, fan_in, residual_out

QUERY_BLOCK = 32  # queries per block in blocked_attention_forward
ATTENTION_FUSED = {"w_qkv": ("wq", "wk", "wv")}  # one stacked product for the three projections


class Position(NamedTuple):
    """A position scheme of the attention (module docstring)."""

    params: Callable  # cfg -> {local name: Param}, beside wq..wo in the attention's parameters
    attend_forward: Callable  # (q, k, v, p, hide, dropout) -> o, cache: one block of queries
    attend_backward: Callable  # (do, cache) -> dq, dk, dv, {local name: gradient}
    encode_forward: Callable | None = None  # (x, positions, cfg) -> x', cache; None: x as is
    encode_backward: Callable | None = None  # (dx', cache) -> dx


def attention_params(cfg, position: Position) -> dict[str, Param]:
    d = (cfg.d_model, cfg.d_model)
    return {
        "wq": Param(d, fan_in, True, "query projection"),
        "wk": Param(d, fan_in, True, "key projection"),
        "wv": Param(d, fan_in, True, "value projection"),
        "wo": Param(d, residual_out(cfg.n_steps), True, "attention output projection"),
        **position.params(cfg),
    }


def split_heads(x, n_heads):
    B, T, d = x.shape
    return x.reshape(B, T, n_heads, d // n_heads).transpose(0, 2, 1, 3)  # (B, H, T, dh)


def merge_heads(x):
    B, H, T, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * dh)  # (B, T, d)


@functools.lru_cache(maxsize=256)
def tri(rows: int, cols: int, k: int, dtype: np.dtype) -> np.ndarray:
    """np.tri(rows, cols, k) in `dtype`, built once per shape and shared: read-only. The attention
    asks for the same few shapes at every block of every step of every call."""
    out = np.tri(rows, cols, k, dtype=dtype)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=256)
def future_scores(Tq: int, Tk: int, dtype: np.dtype) -> np.ndarray:
    """(Tq, Tk): 0 where query i (at position Tk - Tq + i) may see key j, -inf where j is later.
    Built once per shape and shared: read-only."""
    out = np.where(tri(Tq, Tk, Tk - Tq, np.dtype(bool)), 0.0, -np.inf).astype(dtype)
    out.flags.writeable = False
    return out


def scores(q, k, hide):
    """The causal scores q_i . k_j / sqrt(dh) (B, H, Tq, Tk), -inf for future and hidden keys."""
    s = (q * q.shape[-1] ** -0.5) @ k.swapaxes(-1, -2)  # (B, H, Tq, Tk)
    if q.shape[2] > 1:  # one query sits at the last position: no key is in its future
        s += future_scores(q.shape[2], k.shape[2], q.dtype)
    if hide is not None:
        np.copyto(s, -np.inf, where=hide)
    return s


def row_sums(x):
    """Sums over the last axis, as ONE matrix product with a column of ones (faster than .sum)."""
    ones = np.ones((x.shape[-1], 1), dtype=x.dtype)
    return (x.reshape(-1, x.shape[-1]) @ ones).reshape(*x.shape[:-1], 1)


# ------------------------------------------------------------------ plain softmax attention


class SoftmaxCache(NamedTuple):
    q: np.ndarray  # (B, H, Tq, dh)
    k: np.ndarray  # (B, H, Tk, dh)
    v: np.ndarray  # (B, H, Tk, dh)
    a: np.ndarray  # (B, H, Tq, Tk) attention weights
    o: np.ndarray  # (B, H, Tq, dh) the output
    drop: np.ndarray | None  # (B, H, Tq, Tk) dropout mask of the attention weights, or None


def softmax_attention_forward(q, k, v, p=None, hide=None, dropout=None):
    """q (B, H, Tq, dh), k and v (B, H, Tk, dh) -> o = softmax(q k^T / sqrt(dh)) v (B, H, Tq, dh).

    p: unused (no parameters); hide, dropout: as in `blocked_attention_forward`."""
    logits = scores(q, k, hide)
    logits -= logits.max(axis=-1, keepdims=True)
    a = np.exp(logits, out=logits)  # (B, H, Tq, Tk)
    a /= row_sums(a)
    a_used, drop = dropout_forward(a, dropout)
    o = a_used @ v  # (B, H, Tq, dh)
    return o, SoftmaxCache(q, k, v, a, o, drop)


# dl = a * (da - sum_j da_ij a_ij) (softmax), and sum_j da_ij a_ij = do_i . o_i (with dropout too:
# da = (do v^T) * mask). Then dq = dl k / sqrt(dh), dk = dl^T q / sqrt(dh), dv = (a * mask)^T do.
def softmax_attention_backward(do, cache):
    """-> dq, dk, dv, {} (no parameters)."""
    q, k, v, a, o, drop = cache
    da = dropout_backward(do @ v.swapaxes(-1, -2), drop)  # (B, H, Tq, Tk)
    dv = (a if drop is None else a * drop).swapaxes(-1, -2) @ do  # (B, H, Tk, dh)
    dl = da
    dl -= (do * o).sum(axis=-1, keepdims=True)
    dl *= a
    scale = q.shape[-1] ** -0.5
    dq = dl @ k  # (B, H, Tq, dh)
    dq *= scale
    dk = dl.swapaxes(-1, -2) @ q  # (B, H, Tk, dh)
    dk *= scale
    return dq, dk, dv, {}


NO_POSITION = Position(lambda cfg: {}, softmax_attention_forward, softmax_attention_backward)


# ------------------------------------------------------------------ blocks of queries


class AttentionBlocks(NamedTuple):
    q: np.ndarray  # (B, H, Tq, dh) every query
    k: np.ndarray  # (B, H, Tk, dh) every key
    blocks: list  # the cache of each block of queries, in order


def blocked_attention_forward(position: Position, q, k, v, p, hide=None, dropout=None):
    """`position.attend_forward` over all queries (the same result up to float rounding), in
    blocks of QUERY_BLOCK queries. A block's last query sits at position `stop` of the keys, and
    every key after it is masked for the whole block, so the block only takes keys 0 .. stop - 1.

    q (B, H, Tq, dh), k and v (B, H, Tk, dh), p: the attention's parameters -> o (B, H, Tq, dh).
    hide: None, or booleans broadcastable to (B, H, Tq, Tk), True where a query must not see a key
    even though it is in the past; every query must still see at least one key.
    dropout: None, or a `Dropout` for the attention weights (training).
    """
    B, H, Tq, _ = q.shape
    Tk = k.shape[2]
    if hide is not None:
        hide = np.broadcast_to(hide, (B, H, Tq, Tk))  # so that its rows can be sliced
    outs, blocks = [], []
    for first in range(0, Tq, QUERY_BLOCK):
        last = min(first + QUERY_BLOCK, Tq)
        stop = Tk - Tq + last  # the keys this block sees: 0 .. stop - 1
        o, cache = position.attend_forward(
            q[:, :, first:last],
            k[:, :, :stop],
            v[:, :, :stop],
            p,
            None if hide is None else hide[:, :, first:last, :stop],
            dropout,  # each row draws its blocks' masks in order, one block after another
        )
        outs.append(o)  # (B, H, last - first, dh)
        blocks.append(cache)
    o = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)  # (B, H, Tq, dh)
    return o, AttentionBlocks(q, k, blocks)


def blocked_attention_backward(position: Position, do, cache):
    """-> dq, dk, dv, parameter gradients: each block's, the keys' and parameters' summed."""
    q, k, blocks = cache
    dq, dk, dv = np.empty_like(q), np.zeros_like(k), np.zeros_like(k)  # (B, H, T, dh)
    grads = {}
    first = 0
    for block in blocks:
        last, stop = first + block.q.shape[2], block.k.shape[2]
        dq_b, dk_b, dv_b, grads_b = position.attend_backward(do[:, :, first:last], block)
        dq[:, :, first:last] = dq_b
        dk[:, :, :stop] += dk_b
        dv[:, :, :stop] += dv_b
        for name, g in grads_b.items():
            grads[name] = g if name not in grads else grads[name] + g
        first = last
    return dq, dk, dv, grads


# ------------------------------------------------------------------ the layer


class AttentionCache(NamedTuple):
    position: Position
    qkv: tuple  # the stacked product's cache
    encoded: tuple | None  # the caches of encoding q and k (RoPE), or None
    core: AttentionBlocks
    out: tuple  # the output projection's cache


def project_qkv(u, p, cfg, position: Position, positions=None):
    """u (B, T, d) -> q, k, v (B, H, T, dh) each, q and k encoded at `positions` (B, T) (None:
    0 .. T-1), and the caches of the one stacked product and of the encoding."""
    qkv, cache_qkv = stacked_linear_forward(u, p["w_qkv"])  # (3, B, T, d)
    q, k, v = [split_heads(x, cfg.n_heads) for x in qkv]  # (B, H, T, dh) each
    encoded = None
    if position.encode_forward is not None:
        q, cache_q = position.encode_forward(q, positions, cfg)
        k, cache_k = position.encode_forward(k, positions, cfg)
        encoded = (cache_q, cache_k)
    return q, k, v, cache_qkv, encoded


def attention_forward(u, p, cfg, position: Position, positions=None, kv=None, step=0, dropout=None):
    """u (B, T, d), p: w_qkv = [wq, wk, wv] (3, d, d), wo (d, d) and the scheme's parameters,
    cfg: n_heads (and the scheme's settings) -> y (B, T, d).

    positions (B, T): each token's position in its row; None means 0 .. T-1 (training).
    kv: None (training: the T tokens attend to each other), or a `KVCache` whose recursion step
    `step` receives these tokens' keys and values and supplies every cached one to attend to.
    dropout: None, or a `Dropout` for the attention weights (training).
    """
    q, k, v, cache_qkv, encoded = project_qkv(u, p, cfg, position, positions)
    hide = None
    if kv is not None:
        k, v, hide = kv.update(step, k, v)  # (B, H, Tk, dh): the cached keys and the new ones
    o, core = blocked_attention_forward(position, q, k, v, p, hide, dropout)
    y, cache_o = linear_forward(merge_heads(o), p["wo"])  # (B, T, d)
    return y, AttentionCache(position, cache_qkv, encoded, core, cache_o)


def attention_backward(dy, cache: AttentionCache):
    """-> du, {"w_qkv": (3, d, d), "wo": (d, d), and the scheme's parameters}.
    (Training only: a forward with a cache has no backward.)"""
    B, T, d = dy.shape
    H = cache.core.q.shape[1]
    dm, dwo = linear_backward(dy, cache.out)  # (B, T, d)
    dq, dk, dv, grads = blocked_attention_backward(cache.position, split_heads(dm, H), cache.core)
    if cache.encoded is not None:
        dq = cache.position.encode_backward(dq, cache.encoded[0])
        dk = cache.position.encode_backward(dk, cache.encoded[1])
    dqkv = np.empty((3, B, T, H, d // H), dtype=dy.dtype)
    for i, dx in enumerate((dq, dk, dv)):  # three copies back to the (B, T, ...) layout
        dqkv[i] = dx.transpose(0, 2, 1, 3)
    du, dw_qkv = stacked_linear_backward(dqkv.reshape(3, B, T, d), cache.qkv)
    return du, {"w_qkv": dw_qkv, "wo": dwo, **grads}
