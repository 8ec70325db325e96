"""The GELU feed-forward network of GPT-2:  FFN(u) = gelu(u W1) W2, with the tanh form

    gelu(a) = 0.5 a (1 + tanh(c (a + 0.044715 a^3))),   c = sqrt(2 / pi)

One up projection (d, F) instead of SwiGLU's two, so at the same d_ff it has a third fewer
parameters and multiply-adds.
"""

import math

import numpy as np

from .linear import linear_backward, linear_forward
from .param import Layer, Param, up_down_params

# A Python float: a NumPy float64 scalar would turn a float32 model's arithmetic into float64.
C = math.sqrt(2.0 / math.pi)
K = 0.044715


def gelu_params(cfg) -> dict[str, Param]:
    return up_down_params(cfg, "GELU")


def gelu_forward(u, p, cfg=None):
    """u (..., d), p: w1 (d, F), w2 (F, d) -> (..., d)."""
    a, cache_in = linear_forward(u, p["w1"])  # (..., F)
    t = np.tanh(C * (a + K * (a * a * a)))  # (..., F); a**3 would call pow(), 100x slower
    m = 0.5 * a * (1.0 + t)  # gelu(a)
    out, cache_out = linear_forward(m, p["w2"])  # (..., d)
    return out, (cache_in, a, t, cache_out)


# gelu'(a) = 0.5 (1 + t) + 0.5 a (1 - t^2) c (1 + 3 K a^2)
def gelu_backward(dout, cache):
    """-> du, {"w1": (d, F), "w2": (F, d)}."""
    cache_in, a, t, cache_out = cache
    dm, dw2 = linear_backward(dout, cache_out)  # (..., F)
    slope = 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * C * (1.0 + 3.0 * K * a * a)
    du, dw1 = linear_backward(dm * slope, cache_in)  # (..., d)
    return du, {"w1": dw1, "w2": dw2}


GELU = Layer(gelu_params, gelu_forward, gelu_backward)
