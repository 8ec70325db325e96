"""The SwiGLU feed-forward network (Shazeer 2020):  FFN(u) = (silu(u W1) * (u W3)) W2.

W1 (gate) and W3 (up) read the same input, so they run as ONE stacked product with the fused
array w13 = [W1, W3] (2, d, F): the layer declares the group in `SWIGLU_FUSED`, and the model
stacks it once per forward pass (params.weights), so the forward and backward passes here see
`w13`, never w1 and w3 apart.
"""

import numpy as np

from .activations import sigmoid
from .linear import (
    linear_backward,
    linear_forward,
    stacked_linear_backward,
    stacked_linear_forward,
)
from .param import Layer, Param, fan_in, residual_out

SWIGLU_FUSED = {"w13": ("w1", "w3")}


def swiglu_params(cfg) -> dict[str, Param]:
    up = (cfg.d_model, cfg.d_ff)
    return {  # (w1, w3, w2: the order of the random draws)
        "w1": Param(up, fan_in, True, "SwiGLU gate projection"),
        "w3": Param(up, fan_in, True, "SwiGLU up projection"),
        "w2": Param((cfg.d_ff, cfg.d_model), residual_out(cfg.n_steps), True, "SwiGLU down"),
    }


def swiglu_forward(u, p, cfg=None):
    """u (..., d), p: w13 = [w1, w3] stacked (2, d, F), w2 (F, d) -> (..., d)."""
    (a, b), cache_in = stacked_linear_forward(u, p["w13"])  # gate and up pre-activations (..., F)
    sig = sigmoid(a)
    act = a * sig  # silu(a)
    m = act * b  # (..., F)
    out, cache_out = linear_forward(m, p["w2"])  # (..., d)
    return out, (cache_in, a, b, sig, act, cache_out)


# silu'(a) = sig + a * sig * (1 - sig) = sig * (1 + a * (1 - sig)).
#   dm = dout W2^T,  da = dm * b * silu'(a),  db = dm * silu(a),  [du, dW1, dW3] from the stacked product.
def swiglu_backward(dout, cache):
    """-> du, {"w13": (2, d, F), "w2": (F, d)}."""
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
    return du, {"w13": dw13, "w2": dw2}


SWIGLU = Layer(swiglu_params, swiglu_forward, swiglu_backward, SWIGLU_FUSED)
