"""Dynamic Tanh (DyT, Zhu et al. 2025): a normalisation layer without statistics.

    y = gamma * tanh(alpha * x) + beta        alpha: one learned scalar; gamma, beta: (d,)

Unlike LayerNorm it does not look at the other features of the token, so it is elementwise and cheap;
the tanh squashes outliers the way normalisation would.
"""

import numpy as np

from .param import Layer, Param, constant, ones, zeros


def dyt_params(cfg) -> dict[str, Param]:
    d = (cfg.d_model,)
    return {
        "alpha": Param((1,), constant(cfg.dyt_alpha_init), False, "DyT steepness"),
        "gamma": Param(d, ones, False, "DyT gain"),
        "beta": Param(d, zeros, False, "DyT shift"),
    }


def dyt_forward(x, p, cfg=None):
    """x (..., d), p: alpha (1,), gamma (d,), beta (d,) -> y (..., d). (DyT has no settings.)"""
    t = np.tanh(p["alpha"] * x)  # (..., d)
    y = p["gamma"] * t + p["beta"]  # (..., d)
    return y, (x, t, p["alpha"], p["gamma"])


# With t = tanh(alpha x):  dy/dgamma = t,  dy/dbeta = 1,  dt/d(alpha x) = 1 - t^2, so
#   du = dy * gamma * (1 - t^2),  dx = alpha * du,  dalpha = sum(du * x)
def dyt_backward(dy, cache):
    """-> dx (..., d), {"alpha", "gamma", "beta"}."""
    x, t, alpha, gamma = cache
    lead = tuple(range(dy.ndim - 1))
    dgamma = (dy * t).sum(axis=lead)  # (d,)
    dbeta = dy.sum(axis=lead)  # (d,)
    du = dy * gamma
    du *= 1.0 - t * t  # (..., d)
    dalpha = np.array([np.vdot(du, x)], dtype=x.dtype)  # (1,)
    dx = du * alpha  # (..., d)
    return dx, {"alpha": dalpha, "gamma": dgamma, "beta": dbeta}


DYT = Layer(dyt_params, dyt_forward, dyt_backward)
