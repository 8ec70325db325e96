"""LayerNorm (Ba et al. 2016): each token's features to zero mean and unit variance, then a gain
and a shift.

    y = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta       over the last axis

`var` is the biased variance (the mean of the squared deviations), as GPT-2 and PyTorch use; `eps`
is `cfg.norm_eps`. gamma and beta: (d,).
"""

import numpy as np

from .param import Layer, Param, ones, zeros


def layernorm_params(cfg) -> dict[str, Param]:
    d = (cfg.d_model,)
    return {
        "gamma": Param(d, ones, False, "LayerNorm gain"),
        "beta": Param(d, zeros, False, "LayerNorm shift"),
    }


def layernorm_forward(x, p, cfg):
    """x (..., d), p["gamma"], p["beta"] (d,) -> y (..., d)."""
    xc = x - x.mean(axis=-1, keepdims=True)  # (..., d)
    r = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + cfg.norm_eps)  # (..., 1)
    xhat = xc * r  # (..., d)
    return xhat * p["gamma"] + p["beta"], (xhat, r, p["gamma"])


# For g = dy * gamma, the two statistics each remove one direction from g before the scaling:
#   dx = r (g - mean(g) - xhat mean(g xhat))
def layernorm_backward(dy, cache):
    """-> dx (..., d), {"gamma": (d,), "beta": (d,)}."""
    xhat, r, gamma = cache
    lead = tuple(range(dy.ndim - 1))
    grads = {"gamma": (dy * xhat).sum(axis=lead), "beta": dy.sum(axis=lead)}  # (d,) each
    g = dy * gamma  # (..., d)
    g -= g.mean(axis=-1, keepdims=True)  # mean(xhat) = 0, so this leaves mean(g xhat) as it was
    g -= xhat * (g * xhat).mean(axis=-1, keepdims=True)
    return g * r, grads


LAYERNORM = Layer(layernorm_params, layernorm_forward, layernorm_backward)
