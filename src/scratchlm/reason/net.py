"""The tiny network a TRM calls over and over: `n_layers` post-norm layers (the paper uses 2).

Each layer, on h (B, L, d):

    h = mixing(h)                    MLP variant: token_mix (a SwiGLU across positions, post-norm)
                                     attention variant: RMSNorm(h + Attn(h))
    h = RMSNorm(h + SwiGLU(h))       across features; RMSNorm without a gain

Post-norm (the norm AFTER each residual sum, as in the paper's code) keeps every call's output at
unit scale however often the network is applied to its own output.

Each part's forward and backward pass takes and returns its weights by local name, with the groups
a layer multiplies in one product stacked (SwiGLU's w13 = [w1, w3], attention's w_qkv): `fuse`
stacks them once per supervision step, not at each of its many calls; `net_backward` returns
gradients in the same shape, which the caller sums over the calls (`add_into`) and splits back
into named parameters once (`unfuse`).
"""

from typing import NamedTuple

import numpy as np

from ..layers.swiglu import SWIGLU_FUSED, swiglu_backward, swiglu_forward
from .config import ReasonConfig, layer_params
from .layers import (
    attention_backward,
    attention_forward,
    post_norm_backward,
    post_norm_forward,
    token_mix_backward,
    token_mix_forward,
)


class LayerCache(NamedTuple):
    mix: tuple  # token_mix's cache, or (attention cache, norm cache)
    ffn: tuple
    norm: tuple


# Each part of a layer, and its weights stacked for one product (as the layers declare them).
FUSED = {"mix": SWIGLU_FUSED, "attn": {"w_qkv": ("wq", "wk", "wv")}, "ffn": SWIGLU_FUSED}


def fuse(params: dict, cfg: ReasonConfig) -> list[dict]:
    """Per layer: {part: {local name: array}}, each part's fused groups stacked (2 or 3, n, m)."""
    fused = []
    for k in range(cfg.n_layers):
        parts: dict[str, dict] = {}
        for name in layer_params(cfg):
            part, local = name.split(".")
            parts.setdefault(part, {})[local] = params[f"layers.{k}.{name}"]
        for part, local in parts.items():
            for group, names in FUSED[part].items():
                local[group] = np.stack([local.pop(n) for n in names])
        fused.append(parts)
    return fused


def unfuse(fused_grads: list[dict], cfg: ReasonConfig) -> dict:
    """The gradients of `fuse`'s arrays as gradients of the named parameters."""
    grads = {}
    for k, parts in enumerate(fused_grads):
        for part, local in parts.items():
            for group, array in local.items():
                names = FUSED[part].get(group, (group,))
                stacked = array if group in FUSED[part] else [array]
                grads |= {f"layers.{k}.{part}.{n}": a for n, a in zip(names, stacked, strict=True)}
    return grads


def add_into(total: list[dict] | None, grads: list[dict]) -> list[dict]:
    """total += grads, array by array (the first call's grads start it)."""
    if total is None:
        return grads
    for t, g in zip(total, grads, strict=True):
        for part, local in t.items():
            for name in local:
                local[name] += g[part][name]
    return total


def net_forward(h, fused: list[dict], cfg: ReasonConfig):
    """h (B, L, d) -> (B, L, d), caches (one per layer)."""
    caches = []
    for w in fused:
        if cfg.mixer == "mlp":
            h, c_mix = token_mix_forward(h, w["mix"], cfg)
        else:
            a, c_attn = attention_forward(h, w["attn"], cfg)
            h, c_norm = post_norm_forward(h + a, cfg)
            c_mix = (c_attn, c_norm)
        f, c_ffn = swiglu_forward(h, w["ffn"], cfg)  # (B, L, d)
        h, c_norm = post_norm_forward(h + f, cfg)
        caches.append(LayerCache(c_mix, c_ffn, c_norm))
    return h, caches


def net_backward(dout, caches: list[LayerCache], cfg: ReasonConfig):
    """-> dh (B, L, d), the fused weights' gradients ({part: {name: array}} per layer)."""
    grads = []
    for c in reversed(caches):
        du = post_norm_backward(dout, c.norm)  # d(h + f)
        dh, g = swiglu_backward(du, c.ffn)
        dh += du
        g = {"ffn": g}
        if cfg.mixer == "mlp":
            dout, g["mix"] = token_mix_backward(dh, c.mix)
        else:
            c_attn, c_norm = c.mix
            du = post_norm_backward(dh, c_norm)  # d(h + a)
            dout, g["attn"] = attention_backward(du, c_attn)
            dout += du
        grads.append(g)
    return dout, grads[::-1]
