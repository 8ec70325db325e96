"""The SwiGLU feed-forward network (Shazeer 2020):  FFN(u) = (silu(u W1) * (u W3)) W2.

W1 (gate) and W3 (up) read the same input, so they run as one fused matrix product.
"""

import numpy as np

from .linear import linear_backward, linear_forward


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form of 1 / (1 + e^-x)


def swiglu_forward(u, w1, w3, w2):
    """u (..., d), w1 (d, F), w3 (d, F), w2 (F, d) -> (..., d)."""
    return swiglu_fused_forward(u, np.concatenate([w1, w3], axis=1), w2)


def swiglu_fused_forward(u, w13, w2):
    """The same with W1 and W3 side by side, w13 (d, 2F): generation fuses them once, not per call."""
    F = w13.shape[1] // 2
    ab, cache_in = linear_forward(u, w13)  # (..., 2F)
    a, b = ab[..., :F], ab[..., F:]  # gate and up pre-activations, (..., F) each
    sig = _sigmoid(a)
    act = a * sig  # silu(a)
    m = act * b  # (..., F)
    out, cache_out = linear_forward(m, w2)  # (..., d)
    return out, (cache_in, a, b, sig, act, cache_out)


# silu'(a) = sig + a * sig * (1 - sig) = sig * (1 + a * (1 - sig)).
#   dm = dout W2^T,  da = dm * b * silu'(a),  db = dm * silu(a),  [du, dW1|dW3] from the fused product.
def swiglu_backward(dout, cache):
    cache_in, a, b, sig, act, cache_out = cache
    dm, dw2 = linear_backward(dout, cache_out)  # (..., F), (F, d)
    dab = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=dm.dtype)  # (..., 2F)
    F = a.shape[-1]
    dab[..., :F] = dm * b * (sig * (1.0 + a * (1.0 - sig)))
    dab[..., F:] = dm * act
    du, dw13 = linear_backward(dab, cache_in)  # (..., d), (d, 2F)
    return du, dw13[:, :F], dw13[:, F:], dw2
