"""CoPE, contextual position encoding (Golovneva et al. 2024): attention whose positions are counted
by the queries themselves.

Per head, for a query i and a key j <= i (docs/design.md section 2.6):

    s_ij = q_i . k_j / sqrt(d_head)                  content score
    g_ij = sigmoid(s_ij)                             gate: does token j "count" for query i?
    p_ij = min(sum_{t=j..i} g_it, P - 1)             contextual position: gates counted back from i
    z_i[m] = q_i . cope[head, m]                     score of every integer position m = 0..P-1
    e_ij = (1 - w) z_i[floor p_ij] + w z_i[ceil p_ij],   w = p_ij - floor p_ij
    a_i = softmax_j(s_ij + e_ij),   o_i = sum_j a_ij v_j

Positions are counted in units the model chooses (words, sentences...) instead of tokens. This file
is the `attend` of the CoPE `Position` (layers/attention.py runs it in blocks of queries); it has
no `encode`: the keys a cache stores need no position. Its parameter is the table `cope`
(H, P, d_head), one per head, P = `cope_max_pos`.
"""

from typing import NamedTuple

import numpy as np

from .activations import sigmoid
from .attention import Position, row_sums, scores, tri
from .dropout import dropout_backward, dropout_forward
from .param import Param, normal

SUM_BLOCK = 16  # the inner blocks of the two-level cumulative sum
ONE_LEVEL_WORK = 2**20  # multiply-adds under which the cumulative sum is one triangular product


def cope_params(cfg) -> dict[str, Param]:
    # Small (std 0.02) like the head: positions start as a nudge on the content scores. Not
    # decayed: a lookup table whose far rows are seldom reached.
    shape = (cfg.n_heads, cfg.cope_max_pos, cfg.d_model // cfg.n_heads)
    return {
        "cope": Param(shape, normal(0.02), False, "CoPE position embeddings, one table per head")
    }


def _rows(x, m):
    """x (..., T) @ m (T, n) as ONE matrix product over all leading rows."""
    return (x.reshape(-1, x.shape[-1]) @ m).reshape(*x.shape[:-1], m.shape[1])


def cumsum_last(x, reverse=False):
    """Cumulative sums over the last axis: out_j = sum_{t <= j} x_t (reverse: sum_{t >= j} x_t).

    np.cumsum loops over each row in scalar code (several times slower than this), and one
    product with an (n, n) triangular matrix costs O(n) per element. Two levels cost
    O(SUM_BLOCK + n / SUM_BLOCK) per element: a triangular product within blocks of SUM_BLOCK, then
    each block adds the totals of the blocks before it (after it). For a few short rows (decoding
    one token: a row per head) the two levels' extra steps cost more than they save, so up to
    ONE_LEVEL_WORK multiply-adds it is one product.
    """
    n, m = x.shape[-1], SUM_BLOCK
    if x.size * n <= ONE_LEVEL_WORK:
        t = tri(n, n, 0, x.dtype)  # t[t, j] = [t >= j]: the sum from j to the row's end
        return _rows(x, t if reverse else t.T)
    nb = -(-n // m)  # number of blocks; the last one is padded with zeros
    if nb * m > n:
        x = np.concatenate([x, np.zeros((*x.shape[:-1], nb * m - n), dtype=x.dtype)], axis=-1)
    inner = tri(m, m, 0, x.dtype)  # inner[t, j] = [t >= j]: sums from j to the block's end
    outer = tri(nb, nb, -1, x.dtype)  # outer[c, b] = [c > b]: the blocks after block b
    if not reverse:
        inner, outer = inner.T, outer.T  # sums from the block's start; the blocks before
    sums = _rows(x.reshape(*x.shape[:-1], nb, m), inner)  # (..., nb, m)
    totals = sums[..., 0 if reverse else -1]  # (..., nb) each block's total
    sums += _rows(totals, outer)[..., None]
    return sums.reshape(*x.shape[:-1], nb * m)[..., :n]


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


def cope_attention_forward(q, k, v, p, hide=None, dropout=None):
    """q (B, H, Tq, dh), k and v (B, H, Tk, dh), p["cope"] (H, P, dh) -> o (B, H, Tq, dh).

    hide, dropout: as in `attention.blocked_attention_forward`."""
    cope = p["cope"]
    B, H, Tq, dh = q.shape
    P = cope.shape[1]
    # Future keys get score -inf: their gates sigmoid(-inf) are exactly 0, so they add nothing to
    # the positions, and the softmax gives them weight 0 - one mask serves both.
    s = scores(q, k, hide)  # (B, H, Tq, Tk)
    g = sigmoid(s)
    pos = cumsum_last(g, reverse=True)  # (B, H, Tq, Tk) p_ij = sum_{t >= j} g_it
    np.minimum(pos, P - 1, out=pos)
    floor = np.floor(pos)
    w = pos - floor  # (B, H, Tq, Tk) interpolation weight
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
    a /= row_sums(a)
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
    """-> dq, dk, dv, {"cope": (H, P, dh)}."""
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
    return dq, dk, dv, {"cope": dcope}


COPE = Position(cope_params, cope_attention_forward, cope_attention_backward)
