"""The recursive block of the Tiny Recursive Model: ONE pre-norm transformer block applied `depth`
times, each step s with its own learned residual scales:

    h = h + attn_scale[s] * Attn(DyT(h; norm1))
    h = h + ffn_scale[s]  * FFN(DyT(h; norm2))

Weight sharing means the block's gradient is the SUM of its gradients over the steps (no averaging).
Each step keeps its own cache. Adaptive depth (per-token halting) lives in act.py.
"""

import numpy as np

from .layers.attention import attention_backward, attention_forward
from .layers.dyt import dyt_backward, dyt_forward
from .layers.swiglu import swiglu_backward, swiglu_forward


def _norm(p, name):
    return p[f"{name}.alpha"], p[f"{name}.gamma"], p[f"{name}.beta"]


def _attn(p):
    return tuple(p[f"block.attn.{w}"] for w in ("wq", "wk", "wv", "wo", "cope"))


def _ffn(p):
    return p["block.ffn.w1"], p["block.ffn.w3"], p["block.ffn.w2"]


def block_step_forward(h, p, s):
    """h (B, T, d), p: the parameter dict, s: the recursion step -> new h (B, T, d), cache."""
    u1, cache_n1 = dyt_forward(h, *_norm(p, "block.norm1"))
    a, cache_attn = attention_forward(u1, *_attn(p))  # (B, T, d)
    h = h + p["block.attn_scale"][s] * a
    u2, cache_n2 = dyt_forward(h, *_norm(p, "block.norm2"))
    f, cache_ffn = swiglu_forward(u2, *_ffn(p))  # (B, T, d)
    h = h + p["block.ffn_scale"][s] * f
    return h, (s, a, f, cache_n1, cache_attn, cache_n2, cache_ffn)


def _add(grads, names, values):
    for name, value in zip(names, values, strict=True):
        grads[name] += value


# Through h2 = h1 + c_f[s] f(h1) and h1 = h0 + c_a[s] a(h0):
#   dc_f[s] = <dh2, f>,  dh1 = dh2 + (c_f[s] dh2) df/dh1;  likewise for the attention half.
def block_step_backward(dh, cache, p, grads):
    """Adds this step's gradients into `grads` and returns dL/dh at the step's input."""
    s, a, f, cache_n1, cache_attn, cache_n2, cache_ffn = cache
    grads["block.ffn_scale"][s] += np.vdot(dh, f)
    du2, *dffn = swiglu_backward(p["block.ffn_scale"][s] * dh, cache_ffn)
    _add(grads, ("block.ffn.w1", "block.ffn.w3", "block.ffn.w2"), dffn)
    dh1, *dnorm2 = dyt_backward(du2, cache_n2)
    _add(grads, ("block.norm2.alpha", "block.norm2.gamma", "block.norm2.beta"), dnorm2)
    dh1 += dh
    grads["block.attn_scale"][s] += np.vdot(dh1, a)
    du1, *dattn = attention_backward(p["block.attn_scale"][s] * dh1, cache_attn)
    _add(grads, tuple(f"block.attn.{w}" for w in ("wq", "wk", "wv", "wo", "cope")), dattn)
    dh0, *dnorm1 = dyt_backward(du1, cache_n1)
    _add(grads, ("block.norm1.alpha", "block.norm1.gamma", "block.norm1.beta"), dnorm1)
    dh0 += dh1
    return dh0


def recursive_forward(h, p, depth):
    """Apply the shared block `depth` times -> final h (B, T, d), one cache per step."""
    caches = []
    for s in range(depth):
        h, cache = block_step_forward(h, p, s)
        caches.append(cache)
    return h, caches


def recursive_backward(dh, caches, p, grads):
    for cache in reversed(caches):
        dh = block_step_backward(dh, cache, p, grads)
    return dh
