"""The squared-ReLU feed-forward network (So et al. 2021, "Primer"; the FFN of modded-nanogpt and
nanochat):  FFN(u) = relu(u W1)^2 W2.

Like GELU's, one up projection (d, F) and one down (F, d); the square keeps the activation smooth
at 0 (its slope 2 relu(a) is continuous), and most of it is exactly zero, which trains well.
"""

import numpy as np

from .linear import linear_backward, linear_forward
from .param import Layer, Param, up_down_params


def relu2_params(cfg) -> dict[str, Param]:
    return up_down_params(cfg, "ReLU^2")


def relu2_forward(u, p, cfg=None):
    """u (..., d), p: w1 (d, F), w2 (F, d) -> (..., d)."""
    a, cache_in = linear_forward(u, p["w1"])  # (..., F)
    r = np.maximum(a, 0.0)  # relu(a)
    out, cache_out = linear_forward(r * r, p["w2"])  # (..., d)
    return out, (cache_in, r, cache_out)


# d relu(a)^2 / da = 2 relu(a)
def relu2_backward(dout, cache):
    """-> du, {"w1": (d, F), "w2": (F, d)}."""
    cache_in, r, cache_out = cache
    dm, dw2 = linear_backward(dout, cache_out)  # (..., F)
    du, dw1 = linear_backward(dm * 2.0 * r, cache_in)  # (..., d)
    return du, {"w1": dw1, "w2": dw2}


RELU2 = Layer(relu2_params, relu2_forward, relu2_backward)
