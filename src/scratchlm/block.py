"""The recursive block of the Tiny Recursive Model: ONE pre-norm transformer block applied `depth`
times, each step s with its own learned residual scales:

    h = h + attn_scale[s] * Attn(DyT(h; norm1))
    h = h + ffn_scale[s]  * FFN(DyT(h; norm2))

Weight sharing means the block's gradient is the SUM of its gradients over the steps (no averaging).
Each step keeps its own cache. `w` is the parameter dict with the fused matrices of `params.fuse`
(`block.attn.w_qkv`, `block.ffn.w13`), and the gradients use the same names. With a key/value cache
(`kv`), step s reads and extends the cache of step s. Adaptive depth (per-token halting) is act.py.

Training may pass a `Dropout` (layers/dropout.py): it drops elements of both residual branches,
h + scale * (a * mask), and the attention weights; its masks are drawn afresh at every step.
"""

import numpy as np

from .layers.attention import attention_backward, attention_forward, project_qkv
from .layers.dropout import dropout_backward, dropout_forward
from .layers.dyt import dyt_backward, dyt_forward
from .layers.swiglu import swiglu_backward, swiglu_forward

ATTN = ("block.attn.w_qkv", "block.attn.wo", "block.attn.cope")
FFN = ("block.ffn.w13", "block.ffn.w2")


def norm_names(norm: str) -> tuple[str, str, str]:
    """The DyT parameters of one norm ("block.norm1", "norm_f", ...): alpha, gamma, beta."""
    return (f"{norm}.alpha", f"{norm}.gamma", f"{norm}.beta")


NORM1, NORM2 = norm_names("block.norm1"), norm_names("block.norm2")


def _get(w, names):
    return [w[name] for name in names]


def _add(grads, names, values):
    for name, value in zip(names, values, strict=True):
        grads[name] += value


def block_step_forward(h, w, s, kv=None, dropout=None):
    """h (B, T, d), w: the fused parameters, s: the recursion step -> new h (B, T, d), cache.

    dropout: None, or a `Dropout` (training) for the branches and the attention weights."""
    u1, cache_n1 = dyt_forward(h, *_get(w, NORM1))
    a, cache_attn = attention_forward(u1, *_get(w, ATTN), kv=kv, step=s, dropout=dropout)
    a, drop_a = dropout_forward(a, dropout)  # (B, T, d)
    h = h + w["block.attn_scale"][s] * a
    u2, cache_n2 = dyt_forward(h, *_get(w, NORM2))
    f, cache_ffn = swiglu_forward(u2, *_get(w, FFN))
    f, drop_f = dropout_forward(f, dropout)  # (B, T, d)
    h = h + w["block.ffn_scale"][s] * f
    return h, (s, a, f, cache_n1, cache_attn, cache_n2, cache_ffn, drop_a, drop_f)


# Through h2 = h1 + c_f[s] f(h1) and h1 = h0 + c_a[s] a(h0) (a and f after their dropout masks):
#   dc_f[s] = <dh2, f>,  dh1 = dh2 + (c_f[s] dh2) df/dh1;  likewise for the attention half.
def block_step_backward(dh, cache, w, grads):
    """Adds this step's gradients into `grads` and returns dL/dh at the step's input."""
    s, a, f, cache_n1, cache_attn, cache_n2, cache_ffn, drop_a, drop_f = cache
    grads["block.ffn_scale"][s] += np.vdot(dh, f)
    df = dropout_backward(w["block.ffn_scale"][s] * dh, drop_f)
    du2, *dffn = swiglu_backward(df, cache_ffn)
    _add(grads, FFN, dffn)
    dh1, *dnorm2 = dyt_backward(du2, cache_n2)
    _add(grads, NORM2, dnorm2)
    dh1 += dh
    grads["block.attn_scale"][s] += np.vdot(dh1, a)
    da = dropout_backward(w["block.attn_scale"][s] * dh1, drop_a)
    du1, *dattn = attention_backward(da, cache_attn)
    _add(grads, ATTN, dattn)
    dh0, *dnorm1 = dyt_backward(du1, cache_n1)
    _add(grads, NORM1, dnorm1)
    dh0 += dh1
    return dh0


def block_keys_values(h, w):
    """The keys and values (B, H, T, dh) that states h (B, T, d) entering ANY step give: the step
    index only enters through the residual scales, so the same state gives the same keys."""
    u1, _ = dyt_forward(h, *_get(w, NORM1))
    return project_qkv(u1, w["block.attn.w_qkv"], w["block.attn.cope"].shape[0])[1:3]


def recursive_forward(h, w, depth, kv=None, dropout=None):
    """Apply the shared block `depth` times -> final h (B, T, d), one cache per step."""
    caches = []
    for s in range(depth):
        h, cache = block_step_forward(h, w, s, kv, dropout)
        caches.append(cache)
    return h, caches


def recursive_backward(dh, caches, w, grads):
    for cache in reversed(caches):
        dh = block_step_backward(dh, cache, w, grads)
    return dh
