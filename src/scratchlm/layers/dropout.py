"""Inverted dropout (Srivastava et al. 2014), for training only.

    y = x * mask,   mask = keep / (1 - rate),   keep ~ Bernoulli(1 - rate) per element

Dividing by 1 - rate keeps the expected value of y equal to x, so generation and evaluation simply
run without dropout. The mask is drawn in the forward pass and kept in the call's cache; the
backward pass treats it as a constant, dL/dx = dL/dy * mask, which is the exact gradient of the
function the forward pass computed (so gradient checks hold for a fixed mask).

A `Dropout` is what one training step asks for: the rate, and where its masks come from. Every ROW
of the batch draws from its own generator, seeded by (seed..., row): a row's masks do not depend on
the other rows, so a batch cut into shards (threads, MPI ranks: parallel.py) draws exactly the masks
the whole batch draws, and the same seed always gives the same masks. No Dropout (None), or a rate
of 0, returns the input itself and draws nothing: the ordinary path is untouched. Where the model
applies it: model.py (embeddings), block.py (both residual branches), attention.py (the attention
weights).
"""

import numpy as np

from ..checks import is_number
from ..errors import ConfigError


class Dropout:
    def __init__(self, rate: float, seed: int | tuple[int, ...] = 0, first_row: int = 0):
        """rate: the probability of zeroing an element, in [0, 1); seed: the masks' source;
        first_row: the index of this batch's first row in the batch it is a shard of."""
        if not is_number(rate) or not 0.0 <= rate < 1.0:
            raise ConfigError(f"dropout rate must be in [0, 1), got {rate!r}")
        self.rate, self.first_row = rate, first_row
        self.seed = tuple(seed) if isinstance(seed, tuple | list) else (seed,)
        self._rows: list[np.random.Generator] | None = None  # made at the first draw

    def shard(self, rows: slice) -> "Dropout":
        """The dropout of the rows `rows` of this batch: they draw what they draw in it."""
        return Dropout(self.rate, self.seed, self.first_row + rows.start)

    def keep(self, shape: tuple[int, ...]) -> np.ndarray:
        """Booleans of `shape` (rows first), True with probability 1 - rate."""
        if self._rows is None:
            rows = range(self.first_row, self.first_row + shape[0])
            self._rows = [np.random.default_rng((*self.seed, row)) for row in rows]
        return np.stack([rng.random(shape[1:]) for rng in self._rows]) >= self.rate


def dropout_forward(x, dropout: Dropout | None):
    """x (B, ...) -> y (B, ...), mask (B, ...) or None (no dropout: y is x itself)."""
    if dropout is None or dropout.rate == 0:
        return x, None
    mask = dropout.keep(x.shape) * np.asarray(1.0 / (1.0 - dropout.rate), dtype=x.dtype)
    return x * mask, mask  # mask: 0 or 1 / (1 - rate)


def dropout_backward(dy, mask):
    """dL/dx = dL/dy * mask (the mask is a constant of the forward pass)."""
    return dy if mask is None else dy * mask
