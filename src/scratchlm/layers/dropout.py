"""Inverted dropout (Srivastava et al. 2014), for training only.

    y = x * mask,   mask = keep / (1 - rate),   keep ~ Bernoulli(1 - rate) per element

Dividing by 1 - rate keeps the expected value of y equal to x, so generation and evaluation simply
run without dropout. The mask is drawn in the forward pass and kept in the call's cache; the
backward pass treats it as a constant, dL/dx = dL/dy * mask, which is the exact gradient of the
function the forward pass computed (so gradient checks hold for a fixed mask).

A `Dropout` is what a training step asks for: the rate and the generator its masks come from. No
Dropout (None), or a rate of 0, returns the input itself and draws nothing: the ordinary path is
untouched. Where the model applies it: model.py (embeddings), block.py (both residual branches),
attention.py (the attention weights).
"""

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Dropout:
    rate: float  # the probability of zeroing an element, in [0, 1)
    rng: np.random.Generator  # the masks' source: a fixed seed gives fixed masks

    def __post_init__(self):
        if isinstance(self.rate, bool) or not 0.0 <= self.rate < 1.0:
            raise ConfigError(f"dropout rate must be in [0, 1), got {self.rate!r}")


def dropout_forward(x, dropout: Dropout | None):
    """x (...) -> y (...), mask (...) or None (no dropout: y is x itself)."""
    if dropout is None or dropout.rate == 0:
        return x, None
    keep = dropout.rng.random(x.shape, dtype=np.float64) >= dropout.rate  # (...) bool
    mask = keep * np.asarray(1.0 / (1.0 - dropout.rate), dtype=x.dtype)  # (...) 0 or 1/(1-rate)
    return x * mask, mask


def dropout_backward(dy, mask):
    """dL/dx = dL/dy * mask (the mask is a constant of the forward pass)."""
    return dy if mask is None else dy * mask
