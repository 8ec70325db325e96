"""RMSNorm (Zhang & Sennrich 2019): scale each token's features to unit root-mean-square.

    y = x / sqrt(mean(x^2) + eps) * gamma          over the last axis; gamma: (d,)

No mean is subtracted and there is no shift (LayerNorm's beta): cheaper, and as good in practice,
which is why most recent language models use it. `eps` is `cfg.norm_eps`.
"""

import numpy as np

from .param import Layer, Param, ones


def rmsnorm_params(cfg) -> dict[str, Param]:
    return {"gamma": Param((cfg.d_model,), ones, False, "RMSNorm gain")}


def rmsnorm_forward(x, p, cfg):
    """x (..., d), p["gamma"] (d,) -> y (..., d)."""
    r = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + cfg.norm_eps)  # (..., 1)
    xhat = x * r  # (..., d)
    return xhat * p["gamma"], (xhat, r, p["gamma"])


# With xhat = x r, r = (mean(x^2) + eps)^(-1/2):  dr/dx_j = -r^3 x_j / d, so for g = dy * gamma
#   dx = r g - xhat * mean(g * xhat) * r      (the component of g along xhat removed, then scaled)
def rmsnorm_backward(dy, cache):
    """-> dx (..., d), {"gamma": (d,)}."""
    xhat, r, gamma = cache
    lead = tuple(range(dy.ndim - 1))
    dgamma = (dy * xhat).sum(axis=lead)  # (d,)
    g = dy * gamma  # (..., d)
    dx = (g - xhat * (g * xhat).mean(axis=-1, keepdims=True)) * r
    return dx, {"gamma": dgamma}


RMSNORM = Layer(rmsnorm_params, rmsnorm_forward, rmsnorm_backward)
