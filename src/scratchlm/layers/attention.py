"""Multi-head causal self-attention with CoPE, contextual position encoding (Golovneva et al. 2024).

Per head, for a query i and a key j <= i (DESIGN.md section 2):

    s_ij = q_i . k_j / sqrt(d_head)                  content score
    g_ij = sigmoid(s_ij)                             gate: does token j "count" for query i?
    p_ij = min(sum_{t=j..i} g_it, P - 1)             contextual position: gates counted back from i
    z_i[m] = q_i . cope[head, m]                     score of every integer position m = 0..P-1
    e_ij = (1 - w) z_i[floor p_ij] + w z_i[ceil p_ij],   w = p_ij - floor p_ij
    a_i = softmax_j(s_ij + e_ij),   o_i = sum_j a_ij v_j

Positions are counted in units the model chooses (words, sentences...) instead of tokens. All heads
and the whole batch are handled by (B, H, T, T) array operations; nothing loops over tokens or heads.

The queries may be the LAST Tq of Tk positions (query i sits at position Tk - Tq + i): with Tq = Tk
this is ordinary self-attention, with Tq < Tk it serves decoding with a key/value cache.
Not handled here: dropout, attention biases, padding masks (right padding needs none: causality
already keeps real tokens from seeing the padding after them).
"""

import numpy as np

from .linear import linear_backward, linear_forward


def split_heads(x, n_heads):
    B, T, d = x.shape
    return x.reshape(B, T, n_heads, d // n_heads).transpose(0, 2, 1, 3)  # (B, H, T, dh)


def merge_heads(x):
    B, H, T, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * dh)  # (B, T, d)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def cope_attention_forward(q, k, v, cope):
    """q (B, H, Tq, dh), k and v (B, H, Tk, dh), cope (H, P, dh) -> o (B, H, Tq, dh)."""
    B, H, Tq, dh = q.shape
    Tk, P = k.shape[2], cope.shape[1]
    causal = np.tri(Tq, Tk, Tk - Tq, dtype=bool)  # (Tq, Tk): key j visible to query i
    s = q @ k.swapaxes(-1, -2)  # (B, H, Tq, Tk)
    s *= 1.0 / np.sqrt(dh)
    g = _sigmoid(s)
    g *= causal  # gates of future keys are 0, so they add nothing to p
    p = np.flip(np.cumsum(np.flip(g, -1), axis=-1), -1)  # (B, H, Tq, Tk): sum_{t>=j} g_it
    p = np.minimum(p, P - 1)
    floor = np.floor(p)
    w = p - floor  # (B, H, Tq, Tk) interpolation weight
    # Flat indices into z of z_i[floor p_ij] and z_i[ceil p_ij]; ceil = floor where w = 0, which
    # covers integer and clamped positions, where the position gets no gradient.
    row = np.arange(B * H * Tq).reshape(B, H, Tq, 1) * P
    idx_floor = floor.astype(np.intp) + row  # (B, H, Tq, Tk)
    idx_ceil = idx_floor + (w > 0)
    z = (q @ cope.swapaxes(-1, -2)).reshape(-1)  # (B*H*Tq*P,) from (B, H, Tq, P)
    z_floor = z[idx_floor]
    z_diff = z[idx_ceil] - z_floor  # (B, H, Tq, Tk)
    logits = s + z_floor + w * z_diff
    a = _softmax(np.where(causal, logits, -np.inf))  # (B, H, Tq, Tk)
    o = a @ v  # (B, H, Tq, dh)
    return o, (q, k, v, cope, a, g, w, z_diff, idx_floor, idx_ceil)


# Backward, with l = s + e the attention logits:
#   dl = a * (da - sum_j da_ij a_ij)                  softmax
#   de = dl;  dz_i[floor] += (1-w) de,  dz_i[ceil] += w de,   dp_ij = de_ij (z_i[ceil] - z_i[floor])
#   p_ij = sum_{t=j..i} g_it   =>   dg_it = sum_{j<=t} dp_ij           (a cumulative sum over j)
#   ds = dl + dg * g (1 - g)                          the gates' sigmoid (g = 0 off the causal part)
#   dq = ds k / sqrt(dh) + dz cope,  dk = ds^T q / sqrt(dh),  dcope = sum_batch dz^T q
def cope_attention_backward(do, cache):
    q, k, v, cope, a, g, w, z_diff, idx_floor, idx_ceil = cache
    B, H, Tq, dh = q.shape
    P = cope.shape[1]
    da = do @ v.swapaxes(-1, -2)  # (B, H, Tq, Tk)
    dv = a.swapaxes(-1, -2) @ do  # (B, H, Tk, dh)
    dl = da
    dl -= (da * a).sum(axis=-1, keepdims=True)
    dl *= a  # (B, H, Tq, Tk), zero on masked keys
    dg = np.cumsum(dl * z_diff, axis=-1)  # (B, H, Tq, Tk)
    ds = dg
    ds *= g * (1.0 - g)
    ds += dl
    n = B * H * Tq * P
    dl_w = dl * w
    dz = np.bincount(idx_floor.ravel(), (dl - dl_w).ravel(), n)
    dz += np.bincount(idx_ceil.ravel(), dl_w.ravel(), n)
    dz = dz.astype(q.dtype).reshape(B, H, Tq, P)
    scale = 1.0 / np.sqrt(dh)
    dq = ds @ k  # (B, H, Tq, dh)
    dq *= scale
    dq += dz @ cope
    dk = ds.swapaxes(-1, -2) @ q  # (B, H, Tk, dh)
    dk *= scale
    dcope = (dz.swapaxes(-1, -2) @ q).sum(axis=0)  # (H, P, dh)
    return dq, dk, dv, dcope


def attention_forward(u, wq, wk, wv, wo, cope):
    """u (B, T, d), w* (d, d), cope (H, P, dh) -> y (B, T, d). Q, K, V come from one fused product."""
    B, T, d = u.shape
    H, dh = cope.shape[0], cope.shape[2]
    qkv, cache_qkv = linear_forward(u, np.concatenate([wq, wk, wv], axis=1))  # (B, T, 3d)
    q, k, v = qkv.reshape(B, T, 3, H, dh).transpose(2, 0, 3, 1, 4)  # 3 x (B, H, T, dh)
    o, cache_att = cope_attention_forward(q, k, v, cope)
    y, cache_o = linear_forward(merge_heads(o), wo)  # (B, T, d)
    return y, (cache_qkv, cache_att, cache_o)


def attention_backward(dy, cache):
    """-> du, dwq, dwk, dwv, dwo, dcope."""
    cache_qkv, cache_att, cache_o = cache
    B, T, d = dy.shape
    H = cache_att[3].shape[0]
    dm, dwo = linear_backward(dy, cache_o)  # (B, T, d)
    dq, dk, dv, dcope = cope_attention_backward(split_heads(dm, H), cache_att)
    dqkv = np.empty((B, T, 3, H, d // H), dtype=dy.dtype)
    for i, dx in enumerate((dq, dk, dv)):  # three copies back to the (B, T, ...) layout
        dqkv[:, :, i] = dx.transpose(0, 2, 1, 3)
    du, dw = linear_backward(dqkv.reshape(B, T, 3 * d), cache_qkv)
    return du, dw[:, :d], dw[:, d : 2 * d], dw[:, 2 * d :], dwo, dcope
