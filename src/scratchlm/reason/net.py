"""The tiny network a TRM calls over and over: `n_layers` post-norm layers (the paper uses 2).

Each layer, on h (B, L, d):

    h = mixing(h)                    MLP variant: token_mix (a SwiGLU across positions, post-norm)
                                     attention variant: RMSNorm(h + Attn(h))
    h = RMSNorm(h + SwiGLU(h))       across features; RMSNorm without a gain

Post-norm (the norm AFTER each residual sum, as in the paper's code) keeps every call's output at
unit scale however often the network is applied to its own output.

The weights of a layer's stacked products are fused once per supervision step (`fuse`), not at
each of its many calls; `net_backward` returns gradients of the fused arrays, which the caller
sums over the calls (`add_into`) and splits back into named parameters once (`unfuse`).
"""

from typing import NamedTuple

import numpy as np

from ..layers.swiglu import swiglu_backward, swiglu_forward
from .config import ReasonConfig
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


def fuse(params: dict, cfg: ReasonConfig, prefix: str = "layers") -> list[dict]:
    """Per layer: its stacked weights, {"mix13", "mix2" | "qkv", "wo", "ffn13", "ffn2"}."""
    fused = []
    for k in range(cfg.n_layers):
        p = lambda n, k=k: params[f"{prefix}.{k}.{n}"]  # noqa: E731
        w = {"ffn13": np.stack([p("ffn.w1"), p("ffn.w3")]), "ffn2": p("ffn.w2")}
        if cfg.mixer == "mlp":
            w |= {"mix13": np.stack([p("mix.w1"), p("mix.w3")]), "mix2": p("mix.w2")}
        else:
            w |= {"qkv": np.stack([p("attn.wq"), p("attn.wk"), p("attn.wv")]), "wo": p("attn.wo")}
        fused.append(w)
    return fused


def unfuse(fused_grads: list[dict], cfg: ReasonConfig, prefix: str = "layers") -> dict:
    """The gradients of `fuse`'s arrays as gradients of the named parameters."""
    grads = {}
    for k, g in enumerate(fused_grads):
        names = {"ffn.w1": g["ffn13"][0], "ffn.w3": g["ffn13"][1], "ffn.w2": g["ffn2"]}
        if cfg.mixer == "mlp":
            names |= {"mix.w1": g["mix13"][0], "mix.w3": g["mix13"][1], "mix.w2": g["mix2"]}
        else:
            names |= {f"attn.{w}": g["qkv"][i] for i, w in enumerate(("wq", "wk", "wv"))}
            names["attn.wo"] = g["wo"]
        grads |= {f"{prefix}.{k}.{n}": a for n, a in names.items()}
    return grads


def add_into(total: list[dict] | None, grads: list[dict]) -> list[dict]:
    """total += grads, layer by layer and array by array (the first call's grads start it)."""
    if total is None:
        return grads
    for t, g in zip(total, grads, strict=True):
        for name in t:
            t[name] += g[name]
    return total


def net_forward(h, fused: list[dict], cfg: ReasonConfig):
    """h (B, L, d) -> (B, L, d), caches (one per layer)."""
    caches = []
    for w in fused:
        if cfg.mixer == "mlp":
            h, c_mix = token_mix_forward(h, w["mix13"], w["mix2"], cfg)
        else:
            a, c_attn = attention_forward(h, w["qkv"], w["wo"], cfg.n_heads, cfg)
            h, c_norm = post_norm_forward(h + a, cfg)
            c_mix = (c_attn, c_norm)
        f, c_ffn = swiglu_forward(h, w["ffn13"], w["ffn2"])  # (B, L, d)
        h, c_norm = post_norm_forward(h + f, cfg)
        caches.append(LayerCache(c_mix, c_ffn, c_norm))
    return h, caches


def net_backward(dout, caches: list[LayerCache], cfg: ReasonConfig):
    """-> dh (B, L, d), the fused weights' gradients (one dict per layer)."""
    grads = []
    for c in reversed(caches):
        du = post_norm_backward(dout, c.norm)  # d(h + f)
        dh, dffn13, dffn2 = swiglu_backward(du, c.ffn)
        dh += du
        g = {"ffn13": dffn13, "ffn2": dffn2}
        if cfg.mixer == "mlp":
            dout, g["mix13"], g["mix2"] = token_mix_backward(dh, c.mix)
        else:
            c_attn, c_norm = c.mix
            du = post_norm_backward(dh, c_norm)  # d(h + a)
            dout, g["qkv"], g["wo"] = attention_backward(du, c_attn)
            dout += du
        grads.append(g)
    return dout, grads[::-1]
