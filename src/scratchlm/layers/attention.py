"""Multi-head causal self-attention with CoPE, contextual position encoding (Golovneva et al. 2024).

Per head, for a query i and a key j <= i (docs/design.md section 2.6):

    s_ij = q_i . k_j / sqrt(d_head)                  content score
    g_ij = sigmoid(s_ij)                             gate: does token j "count" for query i?
    p_ij = min(sum_{t=j..i} g_it, P - 1)             contextual position: gates counted back from i
    z_i[m] = q_i . cope[head, m]                     score of every integer position m = 0..P-1
    e_ij = (1 - w) z_i[floor p_ij] + w z_i[ceil p_ij],   w = p_ij - floor p_ij
    a_i = softmax_j(s_ij + e_ij),   o_i = sum_j a_ij v_j

Positions are counted in units the model chooses (words, sentences...) instead of tokens. All heads
and the whole batch are handled by (B, H, Tq, Tk) array operations; nothing loops over tokens or
heads. Causal attention never needs the masked upper triangle of the scores, so
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
from typing import NamedTuple

import numpy as np

from .activations import sigmoid
from .dropout import dropout_backward, dropout_forward
from .linear import (
    linear_backward,
    linear_forward,
    stacked_linear_backward,
    stacked_linear_forward,
)

QUERY_BLOCK = 32  # queries per block in blocked_attention_forward
SUM_BLOCK = 16  # the inner blocks of the two-level cumulative sum
ONE_LEVEL_WORK = 2**20  # multiply-adds under which the cumulative sum is one triangular product


def split_heads(x, n_heads):
    B, T, d = x.shape
    return x.reshape(B, T, n_heads, d // n_heads).transpose(0, 2, 1, 3)  # (B, H, T, dh)


def merge_heads(x):
    B, H, T, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * dh)  # (B, T, d)


class CopeCache(NamedTuple):
    q: np.ndarray  # (B, H, Tq, dh)
    k: np.ndarray  # (B, H, Tk, dh)
    v: np.ndarray  # (B, H, Tk, dh)
    cope: np.ndarray  # (H, P, dh)
    a: np.ndarray  # (B, H, Tq, Tk) attention weights
    gate_slope: np.ndarray  # (B, H, Tq, Tk) sigmoid'(s), 0 off the causal part
    w: np.ndarray  # (B, H, Tq, Tk) interpolation weight p - floor(p)
    z_diff: np.ndarray  # (B, H, Tq, Tk) z_i[ceil p] - z_i[floor p]
    idx: np.ndarray  # (B, H, Tq, Tk) flat index of z_i[floor p_ij]
    o: np.ndarray  # (B, H, Tq, dh) the output
    drop: np.ndarray | None  # (B, H, Tq, Tk) dropout mask of the attention weights, or None


@functools.lru_cache(maxsize=256)
def _tri(rows: int, cols: int, k: int, dtype: np.dtype) -> np.ndarray:
    """np.tri(rows, cols, k) in `dtype`, built once per shape and shared: read-only. The attention
    asks for the same few shapes at every block of every step of every call."""
    out = np.tri(rows, cols, k, dtype=dtype)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=256)
def _future_scores(Tq: int, Tk: int, dtype: np.dtype) -> np.ndarray:
    """(Tq, Tk): 0 where query i (at position Tk - Tq + i) may see key j, -inf where j is later.
    Built once per shape and shared: read-only."""
    out = np.where(_tri(Tq, Tk, Tk - Tq, np.dtype(bool)), 0.0, -np.inf).astype(dtype)
    out.flags.writeable = False
    return out


def _rows(x, m):
    """x (..., T) @ m (T, n) as ONE matrix product over all leading rows."""
    return (x.reshape(-1, x.shape[-1]) @ m).reshape(*x.shape[:-1], m.shape[1])


def cumsum_last(x, reverse=False):
    """Cumulative sums over the last axis: out_j = sum_{t <= j} x_t (reverse: sum_{t >= j} x_t).

    np.cumsum loops over each row in scalar code (3-4x slower than this, measured), and one
    product with an (n, n) triangular matrix costs O(n) per element. Two levels cost
    O(SUM_BLOCK + n / SUM_BLOCK) per element: a triangular product within blocks of SUM_BLOCK, then
    each block adds the totals of the blocks before it (after it). For a few short rows (decoding
    one token: a row per head) the two levels' extra steps cost more than they save, so up to
    ONE_LEVEL_WORK multiply-adds it is one product (measured: 4 us instead of 9 for 8 rows of 150).
    """
    n, m = x.shape[-1], SUM_BLOCK
    if x.size * n <= ONE_LEVEL_WORK:
        tri = _tri(n, n, 0, x.dtype)  # tri[t, j] = [t >= j]: the sum from j to the row's end
        return _rows(x, tri if reverse else tri.T)
    nb = -(-n // m)  # number of blocks; the last one is padded with zeros
    if nb * m > n:
        x = np.concatenate([x, np.zeros((*x.shape[:-1], nb * m - n), dtype=x.dtype)], axis=-1)
    inner = _tri(m, m, 0, x.dtype)  # inner[t, j] = [t >= j]: sums from j to the block's end
    outer = _tri(nb, nb, -1, x.dtype)  # outer[c, b] = [c > b]: the blocks after block b
    if not reverse:
        inner, outer = inner.T, outer.T  # sums from the block's start; the blocks before
    sums = _rows(x.reshape(*x.shape[:-1], nb, m), inner)  # (..., nb, m)
    totals = sums[..., 0 if reverse else -1]  # (..., nb) each block's total
    sums += _rows(totals, outer)[..., None]
    return sums.reshape(*x.shape[:-1], nb * m)[..., :n]


def cope_attention_forward(q, k, v, cope, hide=None, dropout=None):
    """q (B, H, Tq, dh), k and v (B, H, Tk, dh), cope (H, P, dh) -> o (B, H, Tq, dh).

    hide: None, or booleans broadcastable to (B, H, Tq, Tk), True where a query must not see a key
    even though it is in the past. Every query must still see at least one key.
    dropout: None, or a `Dropout` for the attention weights (training).
    """
    B, H, Tq, dh = q.shape
    Tk, P = k.shape[2], cope.shape[1]
    dtype = q.dtype
    # Future keys get score -inf: their gates sigmoid(-inf) are exactly 0, so they add nothing to
    # the positions, and the softmax gives them weight 0 - one mask serves both.
    s = (q * dh**-0.5) @ k.swapaxes(-1, -2)  # (B, H, Tq, Tk)
    if Tq > 1:  # one query sits at the last position: no key is in its future
        s += _future_scores(Tq, Tk, dtype)
    if hide is not None:
        np.copyto(s, -np.inf, where=hide)  # like future keys: gate 0, attention weight 0
    g = sigmoid(s)
    p = cumsum_last(g, reverse=True)  # (B, H, Tq, Tk) p_ij = sum_{t >= j} g_it
    np.minimum(p, P - 1, out=p)
    floor = np.floor(p)
    w = p - floor  # (B, H, Tq, Tk) interpolation weight
    idx = floor.astype(np.intp)
    idx += np.arange(B * H * Tq).reshape(B, H, Tq, 1) * P  # flat index of z_i[floor p_ij]
    z = q @ cope.swapaxes(-1, -2)  # (B, H, Tq, P) unscaled q, as docs/design.md says
    z_up = np.zeros_like(z)  # z_i[m+1] - z_i[m]; 0 at m = P-1, where p is clamped
    np.subtract(z[..., 1:], z[..., :-1], out=z_up[..., :-1])
    z_floor = z.reshape(-1).take(idx)  # take: faster than fancy indexing for flat indices
    z_diff = z_up.reshape(-1).take(idx)  # z_i[ceil p] - z_i[floor p] wherever w > 0
    # At an integer p, floor = ceil: e is z_i[p] either way and p gets no gradient (design.md).
    np.copyto(z_diff, 0, where=w == 0)
    logits = s
    logits += z_floor
    logits += w * z_diff
    logits -= logits.max(axis=-1, keepdims=True)
    a = np.exp(logits, out=logits)  # (B, H, Tq, Tk)
    a /= _rows(a, np.ones((Tk, 1), dtype=dtype))
    a_used, drop = dropout_forward(a, dropout)  # dropout: a * mask; otherwise a itself
    o = a_used @ v  # (B, H, Tq, dh)
    gate_slope = g
    gate_slope *= 1.0 - g  # sigmoid'(s), 0 off the causal part
    return o, CopeCache(q, k, v, cope, a, gate_slope, w, z_diff, idx, o, drop)


# Backward, with l = s + e the attention logits (with dropout, o = (a * mask) v: the mask multiplies
# into dv = (a * mask)^T do and da = (do v^T) * mask):
#   dl = a * (da - sum_j da_ij a_ij)                  softmax, where sum_j da_ij a_ij = do_i . o_i
#   e = z_i[floor] + w (z_i[floor+1] - z_i[floor])  =>  dz_i[floor] += dl, dz_up_i[floor] += w dl,
#                                                      dp_ij = dl_ij (z_i[ceil] - z_i[floor])
#   p_ij = sum_{t=j..i} g_it   =>   dg_it = sum_{j<=t} dp_ij  (a forward cumulative sum)
#   ds = dl + dg * sigmoid'(s)
#   dq = ds k / sqrt(dh) + dz cope,  dk = ds^T q / sqrt(dh),  dcope = sum_batch dz^T q
def cope_attention_backward(do, cache):
    q, k, v, cope, a, gate_slope, w, z_diff, idx, o, drop = cache
    B, H, Tq, dh = q.shape
    P = cope.shape[1]
    da = dropout_backward(do @ v.swapaxes(-1, -2), drop)  # (B, H, Tq, Tk)
    dv = (a if drop is None else a * drop).swapaxes(-1, -2) @ do  # (B, H, Tk, dh)
    dl = da
    # sum_j da_ij a_ij = do_i . sum_j a_ij (mask_ij) v_j = do_i . o_i: (Tq, dh) work, not (Tq, Tk)
    dl -= (do * o).sum(axis=-1, keepdims=True)
    dl *= a  # (B, H, Tq, Tk), zero on masked keys
    ds = cumsum_last(dl * z_diff)  # dL/dg
    ds *= gate_slope
    ds += dl
    flat = idx.reshape(-1)
    dz = np.zeros((B, H, Tq, P), dtype=q.dtype)
    np.add.at(dz.reshape(-1), flat, dl.reshape(-1))
    dz_up = np.zeros_like(dz)
    np.add.at(dz_up.reshape(-1), flat, (dl * w).reshape(-1))
    dz[..., 1:] += dz_up[..., :-1]  # z_up[m] = z[m+1] - z[m]
    dz[..., :-1] -= dz_up[..., :-1]
    scale = dh**-0.5
    dq = ds @ k  # (B, H, Tq, dh)
    dq *= scale
    dq += dz @ cope
    dk = ds.swapaxes(-1, -2) @ q  # (B, H, Tk, dh)
    dk *= scale
    dcope = (dz.swapaxes(-1, -2) @ q).sum(axis=0)  # (H, P, dh)
    return dq, dk, dv, dcope


class AttentionBlocks(NamedTuple):
    q: np.ndarray  # (B, H, Tq, dh) every query
    k: np.ndarray  # (B, H, Tk, dh) every key
    blocks: list  # the CopeCache of each block of queries, in order


def blocked_attention_forward(q, k, v, cope, hide=None, dropout=None):
    """`cope_attention_forward` (same arguments, same result up to float rounding) in blocks of
    QUERY_BLOCK queries. A block's last query sits at position `stop` of the keys, and every key
    after it is masked for the whole block, so the block only takes keys 0 .. stop - 1."""
    B, H, Tq, _ = q.shape
    Tk = k.shape[2]
    if hide is not None:
        hide = np.broadcast_to(hide, (B, H, Tq, Tk))  # so that its rows can be sliced
    outs, blocks = [], []
    for first in range(0, Tq, QUERY_BLOCK):
        last = min(first + QUERY_BLOCK, Tq)
        stop = Tk - Tq + last  # the keys this block sees: 0 .. stop - 1
        o, cache = cope_attention_forward(
            q[:, :, first:last],
            k[:, :, :stop],
            v[:, :, :stop],
            cope,
            None if hide is None else hide[:, :, first:last, :stop],
            dropout,  # each row draws its blocks' masks in order, one block after another
        )
        outs.append(o)  # (B, H, last - first, dh)
        blocks.append(cache)
    o = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)  # (B, H, Tq, dh)
    return o, AttentionBlocks(q, k, blocks)


def blocked_attention_backward(do, cache):
    """-> dq, dk, dv, dcope: each block's gradients, the keys' and the table's summed over blocks."""
    q, k, blocks = cache
    dq, dk, dv = np.empty_like(q), np.zeros_like(k), np.zeros_like(k)  # (B, H, T, dh)
    dcope = np.zeros_like(blocks[0].cope)  # (H, P, dh)
    first = 0
    for block in blocks:
        last, stop = first + block.q.shape[2], block.k.shape[2]
        dq_b, dk_b, dv_b, dcope_b = cope_attention_backward(do[:, :, first:last], block)
        dq[:, :, first:last] = dq_b
        dk[:, :, :stop] += dk_b
        dv[:, :, :stop] += dv_b
        dcope += dcope_b
        first = last
    return dq, dk, dv, dcope


def project_qkv(u, w_qkv, n_heads):
    """u (B, T, d), w_qkv = [wq, wk, wv] stacked (3, d, d) -> q, k, v (B, H, T, dh) each, and the
    cache of the one stacked product."""
    qkv, cache_qkv = stacked_linear_forward(u, w_qkv)  # (3, B, T, d)
    q, k, v = [split_heads(x, n_heads) for x in qkv]  # (B, H, T, dh) each
    return q, k, v, cache_qkv


def attention_forward(u, w_qkv, wo, cope, kv=None, step=0, dropout=None):
    """u (B, T, d), w_qkv = [wq, wk, wv] (3, d, d), wo (d, d), cope (H, P, dh) -> y (B, T, d).

    kv: None (training: the T tokens attend to each other), or a `KVCache` whose recursion step
    `step` receives these tokens' keys and values and supplies every cached one to attend to.
    dropout: None, or a `Dropout` for the attention weights (training).
    """
    q, k, v, cache_qkv = project_qkv(u, w_qkv, cope.shape[0])  # (B, H, T, dh) each
    hide = None
    if kv is not None:
        k, v, hide = kv.update(step, k, v)  # (B, H, Tk, dh): the cached keys and the new ones
    o, cache_att = blocked_attention_forward(q, k, v, cope, hide, dropout)
    y, cache_o = linear_forward(merge_heads(o), wo)  # (B, T, d)
    return y, (cache_qkv, cache_att, cache_o)


def attention_backward(dy, cache):
    """-> du, dw_qkv (3, d, d), dwo, dcope. (Training only: a forward with a cache has no backward.)"""
    cache_qkv, cache_att, cache_o = cache
    B, T, d = dy.shape
    H = cache_att.q.shape[1]
    dm, dwo = linear_backward(dy, cache_o)  # (B, T, d)
    dq, dk, dv, dcope = blocked_attention_backward(split_heads(dm, H), cache_att)
    dqkv = np.empty((3, B, T, H, d // H), dtype=dy.dtype)
    for i, dx in enumerate((dq, dk, dv)):  # three copies back to the (B, T, ...) layout
        dqkv[i] = dx.transpose(0, 2, 1, 3)
    du, dw_qkv = stacked_linear_backward(dqkv.reshape(3, B, T, d), cache_qkv)
    return du, dw_qkv, dwo, dcope
