"""The SwiGLU feed-forward network (Shazeer 2020):  FFN(u) = (silu(u W1) * (u W3)) W2.

W1 (gate) and W3 (up) read the same input, so they run as ONE stacked product with the fused
array w13 = [W1, W3] (2, d, F); the caller fuses them once per forward pass (see params.fuse).
"""

import numpy as np

from .activations import sigmoid
from .linear import (
    linear_backward,
    linear_forward,
    stacked_linear_backward,
    stacked_linear_forward,
)


def swiglu_forward(u, w13, w2):
    """u (..., d), w13 = [w1, w3] stacked (2, d, F), w2 (F, d) -> (..., d)."""
    (a, b), cache_in = stacked_linear_forward(u, w13)  # gate and up pre-activations, (..., F) each
    sig = sigmoid(a)
    act = a * sig  # silu(a)
    m = act * b  # (..., F)
    out, cache_out = linear_forward(m, w2)  # (..., d)
    return out, (cache_in, a, b, sig, act, cache_out)


# silu'(a) = sig + a * sig * (1 - sig) = sig * (1 + a * (1 - sig)).
#   dm = dout W2^T,  da = dm * b * silu'(a),  db = dm * silu(a),  [du, dW1, dW3] from the stacked product.
def swiglu_backward(dout, cache):
    """-> du, dw13 (2, d, F), dw2."""
    cache_in, a, b, sig, act, cache_out = cache
    dm, dw2 = linear_backward(dout, cache_out)  # (..., F), (F, d)
    dab = np.empty((2, *a.shape), dtype=dm.dtype)  # (2, ..., F): da, db
    da = dab[0]  # in place: each line one pass, no temporaries
    np.subtract(1.0, sig, out=da)
    da *= a
    da += 1.0
    da *= sig  # silu'(a)
    da *= b
    da *= dm
    np.multiply(dm, act, out=dab[1])  # db
    du, dw13 = stacked_linear_backward(dab, cache_in)  # (..., d), (2, d, F)
    return du, dw13, dw2
