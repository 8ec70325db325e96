"""The layers a recursive reasoner needs beyond those of the language model (scratchlm.layers),
each a forward/backward pair checked in float64 (tests/test_reason_layers.py):

- `token_mix`: the MLP-mixer's sequence mixing, a SwiGLU applied across the positions (the same
  one for every feature), for grids of a fixed size, with its post-norm residual;
- `post_norm`: RMSNorm without a gain, after each residual sum (the paper's post-norm);
- `attention`: multi-head self-attention without a causal mask (every cell sees every cell),
  rotary positions (layers/rope.py), no biases;
- `stablemax_cross_entropy`: the stable-max loss of Prieto et al. 2025 the paper's code uses;
- `halt_bce`: the halting head's binary cross-entropy on logits.
"""

import functools
import math
from typing import NamedTuple

import numpy as np

from ..layers.activations import sigmoid
from ..layers.attention import merge_heads, split_heads
from ..layers.linear import (
    linear_backward,
    linear_forward,
    stacked_linear_backward,
    stacked_linear_forward,
)
from ..layers.rmsnorm import rmsnorm_backward, rmsnorm_forward
from ..layers.rope import rope_backward, rope_forward
from ..layers.swiglu import swiglu_backward, swiglu_forward

# ----------------------------------------------------------------------------- sequence mixing


class MixCache(NamedTuple):
    swiglu: tuple
    norm: tuple


def token_mix_forward(h, p, cfg):
    """h (B, L, d), p: w13 (2, L, F), w2 (F, L) -> (B, L, d): the MLP-mixer's token mixing with
    its post-norm residual, as the paper's code has it:

        u = h^T + SwiGLU(h^T)        h^T (B, d, L): each feature's column of L positions
        out = RMSNorm(u)^T           normalised over the POSITIONS (u's last axis), no gain

    The same SwiGLU mixes every feature's column, so it needs a fixed number of positions."""
    ht = h.transpose(0, 2, 1)  # (B, d, L)
    m, c_swiglu = swiglu_forward(ht, p, cfg)  # (B, d, L)
    u, c_norm = post_norm_forward(ht + m, cfg)
    return u.transpose(0, 2, 1), MixCache(c_swiglu, c_norm)


def token_mix_backward(dout, cache: MixCache):
    """dout (B, L, d) -> dh (B, L, d), {"w13", "w2"}."""
    du = post_norm_backward(dout.transpose(0, 2, 1), cache.norm)  # (B, d, L)
    dht, grads = swiglu_backward(du, cache.swiglu)
    return (du + dht).transpose(0, 2, 1), grads


def post_norm_forward(u, cfg):
    """RMSNorm without a gain (gamma fixed at 1, as the paper's rms_norm) over u's last axis."""
    return rmsnorm_forward(u, {"gamma": _ones(u.shape[-1], u.dtype)}, cfg)


def post_norm_backward(dy, cache):
    return rmsnorm_backward(dy, cache)[0]  # the gain's gradient is not used: it is no parameter


@functools.lru_cache(maxsize=16)
def _ones(n: int, dtype) -> np.ndarray:
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones


# ----------------------------------------------------------------------------- attention


class AttentionCache(NamedTuple):
    qkv: tuple  # cache of the stacked projection
    q: np.ndarray  # (B, H, L, dh), rotated
    k: np.ndarray  # (B, H, L, dh), rotated
    v: np.ndarray  # (B, H, L, dh)
    a: np.ndarray  # (B, H, L, L) attention weights
    rope: tuple
    out: tuple  # cache of the output projection


def attention_forward(h, p, cfg):
    """h (B, L, d), p: w_qkv (3, d, d) stacked [wq, wk, wv], wo (d, d) -> (B, L, d).

    a = softmax(q' k'^T / sqrt(dh)) over all positions, q', k' rotated by RoPE (cfg: its
    n_heads, max_seq_len and rope_base)."""
    (q, k, v), c_qkv = stacked_linear_forward(h, p["w_qkv"])  # (B, L, d) each
    q, k, v = (split_heads(t, cfg.n_heads) for t in (q, k, v))  # (B, H, L, dh)
    q, c_rope = rope_forward(q, None, cfg)
    k, _ = rope_forward(k, None, cfg)
    # math.sqrt: a Python float, which keeps a float32 model in float32 (np.sqrt's NumPy float64
    # scalar would promote every product after it to float64 under NumPy 2).
    s = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, L, L)
    s -= s.max(axis=-1, keepdims=True)
    a = np.exp(s)
    a /= a.sum(axis=-1, keepdims=True)
    out, c_out = linear_forward(merge_heads(a @ v), p["wo"])  # (B, L, d)
    return out, AttentionCache(c_qkv, q, k, v, a, c_rope, c_out)


# Softmax backward per row: ds = a * (da - sum_j a_j da_j).
def attention_backward(dout, cache: AttentionCache):
    """-> dh (B, L, d), {"w_qkv": (3, d, d), "wo": (d, d)}."""
    c = cache
    do, dwo = linear_backward(dout, c.out)
    do = split_heads(do, c.q.shape[1])  # (B, H, L, dh)
    da = do @ c.v.swapaxes(-1, -2)  # (B, H, L, L)
    dv = c.a.swapaxes(-1, -2) @ do
    ds = c.a * (da - (c.a * da).sum(axis=-1, keepdims=True))
    ds /= math.sqrt(c.q.shape[-1])
    dq = rope_backward(ds @ c.k, c.rope)
    dk = rope_backward(ds.swapaxes(-1, -2) @ c.q, c.rope)
    dqkv = np.stack([merge_heads(t) for t in (dq, dk, dv)])  # (3, B, L, d)
    dh, dwqkv = stacked_linear_backward(dqkv, c.qkv)
    return dh, {"w_qkv": dwqkv, "wo": dwo}


# ----------------------------------------------------------------------------- losses


def _stable_s(x):
    """s(x) = x + 1 for x >= 0, 1 / (1 - x) below: positive, linear instead of exponential for
    large logits (no overflow, and no pull towards ever larger logits once a class wins)."""
    neg = np.minimum(x, 0.0)
    return np.where(x >= 0, x + 1.0, 1.0 / (1.0 - neg))


def stablemax_cross_entropy_forward(logits, targets):
    """logits (B, N, V), targets (B, N) int -> mean over all B*N cells of -log p[target], with
    p_i = s(x_i) / sum_j s(x_j)."""
    s = _stable_s(logits)  # (B, N, V)
    total = s.sum(axis=-1, keepdims=True)  # (B, N, 1)
    s_t = np.take_along_axis(s, targets[..., None], axis=-1)  # (B, N, 1)
    loss = float(np.mean(np.log(total) - np.log(s_t)))
    return loss, (logits, targets, s, total)


# d/dx_i [log S - log s_t] = s'(x_i) / S - [i = t] s'(x_t) / s_t,
# s'(x) = 1 for x >= 0 and 1 / (1 - x)^2 = s(x)^2 below.
def stablemax_cross_entropy_backward(cache):
    logits, targets, s, total = cache
    ds = np.where(logits >= 0, 1.0, s * s)  # s'(x), (B, N, V)
    dlogits = ds / total
    t = targets[..., None]
    s_t, ds_t = np.take_along_axis(s, t, axis=-1), np.take_along_axis(ds, t, axis=-1)
    np.put_along_axis(dlogits, t, np.take_along_axis(dlogits, t, axis=-1) - ds_t / s_t, axis=-1)
    return (dlogits / targets.size).astype(logits.dtype)


def halt_bce_forward(q, target):
    """q (B,) logits, target (B,) in {0, 1} -> mean binary cross-entropy of sigmoid(q)."""
    # max(q, 0) - q t + log(1 + e^-|q|): the same value, without overflow for any q.
    loss = np.maximum(q, 0.0) - q * target + np.log1p(np.exp(-np.abs(q)))
    return float(loss.mean()), (q, target)


def halt_bce_backward(cache):
    q, target = cache
    return (sigmoid(q) - target) / q.size
