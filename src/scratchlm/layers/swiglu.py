"""The SwiGLU feed-forward network (Shazeer 2020):  FFN(u) = (silu(u W1) * (u W3)) W2.

W1 (gate) and W3 (up) read the same input, so they run as ONE product with the fused matrix
w13 = [W1 | W3] (d, 2F); the caller fuses them once per forward pass (see params.fuse).
"""

import numpy as np

from .activations import sigmoid
from .linear import linear_backward, linear_forward


def swiglu_forward(u, w13, w2):
    """u (..., d), w13 = [w1 | w3] (d, 2F), w2 (F, d) -> (..., d)."""
    F = w13.shape[1] // 2
    ab, cache_in = linear_forward(u, w13)  # (..., 2F)
    a, b = ab[..., :F], ab[..., F:]  # gate and up pre-activations, (..., F) each
    sig = sigmoid(a)
    act = a * sig  # silu(a)
    m = act * b  # (..., F)
    out, cache_out = linear_forward(m, w2)  # (..., d)
    return out, (cache_in, a, b, sig, act, cache_out)


# silu'(a) = sig + a * sig * (1 - sig) = sig * (1 + a * (1 - sig)).
#   dm = dout W2^T,  da = dm * b * silu'(a),  db = dm * silu(a),  [du, dW1|dW3] from the fused product.
def swiglu_backward(dout, cache):
    """-> du, dw13 (d, 2F), dw2."""
    cache_in, a, b, sig, act, cache_out = cache
    dm, dw2 = linear_backward(dout, cache_out)  # (..., F), (F, d)
    F = a.shape[-1]
    dab = np.empty(a.shape[:-1] + (2 * F,), dtype=dm.dtype)  # (..., 2F) = [da | db]
    np.multiply(dm, act, out=dab[..., F:])  # db
    # da in place in ONE contiguous array (faster than working in the strided half of dab)
    da = np.subtract(1.0, sig)  # (..., F)
    da *= a
    da += 1.0
    da *= sig  # silu'(a)
    da *= b
    da *= dm
    dab[..., :F] = da
    du, dw13 = linear_backward(dab, cache_in)  # (..., d), (d, 2F)
    return du, dw13, dw2
