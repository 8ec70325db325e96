"""The recursive block of the Tiny Recursive Model: ONE pre-norm transformer block applied `depth`
times, each step s with its own learned residual scales:

    h = h + attn_scale[s] * Attn(Norm(h; norm1))
    h = h + ffn_scale[s]  * FFN(Norm(h; norm2))

Which norm, which position scheme inside the attention and which feed-forward network: the parts
the config names (parts.py), which the call's weights carry (`w.parts`). With `share_weights` (the
default) every step runs the SAME block, so its gradient is the SUM of its gradients over the steps
(no averaging); otherwise step s runs block s, a GPT-style stack. Each step keeps its own cache.
`w` is the call's `params.Weights` (step s reads `w.blocks[s]`, the fused matrices `w_qkv` and
`w13` included), and the gradients have the same shape. With a key/value cache (`kv`), step s
reads and extends the cache of step s. Adaptive depth (per-token halting) is act.py.

Training may pass a `Dropout` (layers/dropout.py): it drops elements of both residual branches,
h + scale * (a * mask), and the attention weights; its masks are drawn afresh at every step.
"""

from typing import Any, NamedTuple

import numpy as np

from .layers.attention import AttentionCache, attention_backward, attention_forward, project_qkv
from .layers.dropout import dropout_backward, dropout_forward
from .layers.param import Param, constant


def step_scale_params(cfg) -> dict[str, Param]:
    # Every step starts as a plain pre-norm residual step (residual_scale_init, 1 by default); the
    # scales then learn how much each recursion contributes. Depth enters the initialisation
    # through the output projections instead (layers/param.py, residual_out).
    steps, init = (cfg.n_steps,), constant(cfg.residual_scale_init)
    return {
        "attn_scale": Param(steps, init, False, "per-step attention residual scale"),
        "ffn_scale": Param(steps, init, False, "per-step feed-forward residual scale"),
    }


class BlockStepCache(NamedTuple):
    step: int
    a: np.ndarray  # (B, T, d) the attention branch, after its dropout
    f: np.ndarray  # (B, T, d) the feed-forward branch, after its dropout
    norm1: Any
    attn: AttentionCache
    norm2: Any
    ffn: Any
    drop_a: np.ndarray | None  # dropout masks of the two branches
    drop_f: np.ndarray | None


def _add(grads: dict, values: dict) -> None:
    for name, value in values.items():
        grads[name] += value


def block_step_forward(h, w, s, cfg, positions=None, kv=None, dropout=None):
    """h (B, T, d), w: the call's Weights, s: the recursion step -> new h (B, T, d), cache.

    positions (B, T): each token's position (None: 0 .. T-1); dropout: None, or a `Dropout`
    (training) for the branches and the attention weights."""
    parts, b = w.parts, w.blocks[s]
    u1, cache_n1 = parts.norm.forward(h, b.norm1, cfg)
    a, cache_attn = attention_forward(u1, b.attn, cfg, parts.position, positions, kv, s, dropout)
    a, drop_a = dropout_forward(a, dropout)  # (B, T, d)
    h = h + w.scales["attn_scale"][s] * a
    u2, cache_n2 = parts.norm.forward(h, b.norm2, cfg)
    f, cache_ffn = parts.ffn.forward(u2, b.ffn, cfg)
    f, drop_f = dropout_forward(f, dropout)  # (B, T, d)
    h = h + w.scales["ffn_scale"][s] * f
    return h, BlockStepCache(s, a, f, cache_n1, cache_attn, cache_n2, cache_ffn, drop_a, drop_f)


# Through h2 = h1 + c_f[s] f(h1) and h1 = h0 + c_a[s] a(h0) (a and f after their dropout masks):
#   dc_f[s] = <dh2, f>,  dh1 = dh2 + (c_f[s] dh2) df/dh1;  likewise for the attention half.
def block_step_backward(dh, cache: BlockStepCache, w, grads, cfg):
    """Adds this step's gradients into `grads` (Weights-shaped, see params.zero_block_grads) and
    returns dL/dh at the step's input."""
    parts, s, g = w.parts, cache.step, grads.blocks[cache.step]
    grads.scales["ffn_scale"][s] += np.vdot(dh, cache.f)
    df = dropout_backward(w.scales["ffn_scale"][s] * dh, cache.drop_f)
    du2, dffn = parts.ffn.backward(df, cache.ffn)
    _add(g.ffn, dffn)
    dh1, dnorm2 = parts.norm.backward(du2, cache.norm2)
    _add(g.norm2, dnorm2)
    dh1 += dh
    grads.scales["attn_scale"][s] += np.vdot(dh1, cache.a)
    da = dropout_backward(w.scales["attn_scale"][s] * dh1, cache.drop_a)
    du1, dattn = attention_backward(da, cache.attn)
    _add(g.attn, dattn)
    dh0, dnorm1 = parts.norm.backward(du1, cache.norm1)
    _add(g.norm1, dnorm1)
    dh0 += dh1
    return dh0


def block_keys_values(h, w, cfg, positions=None):
    """The keys and values (B, H, T, dh) that states h (B, T, d) entering ANY step of the shared
    block give: the step index only enters through the residual scales."""
    u1, _ = w.parts.norm.forward(h, w.blocks[0].norm1, cfg)
    return project_qkv(u1, w.blocks[0].attn, cfg, w.parts.position, positions)[1:3]


def recursive_forward(h, w, cfg, positions=None, kv=None, dropout=None):
    """Apply the block(s) `depth` times -> final h (B, T, d), one cache per step."""
    caches = []
    for s in range(cfg.depth):
        h, cache = block_step_forward(h, w, s, cfg, positions, kv, dropout)
        caches.append(cache)
    return h, caches


def recursive_backward(dh, caches, w, grads, cfg):
    for cache in reversed(caches):
        dh = block_step_backward(dh, cache, w, grads, cfg)
    return dh
