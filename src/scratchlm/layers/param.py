"""What a layer declares about each of its parameters: shape, initialisation, weight decay, role.

Every layer module names its own parameters by LOCAL name (`gamma`, `wq`, `cope`, ...) in a
`<layer>_params(cfg)` function returning `{local name: Param}`; its forward pass takes them, and its
backward pass returns their gradients, under the same names. params.py prefixes the local names
with where the layer sits (`block.norm1.gamma`, `blocks.2.attn.wq`) to build the model's table.

The initialisers below are the few distributions the model uses; each layer says next to its
parameters why it picks the one it does.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

Init = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


@dataclass(frozen=True)
class Param:
    shape: tuple[int, ...]
    init: Init
    decay: bool  # does weight decay pull it towards zero?
    role: str  # one line for the parameter table (`scratchlm info --params`, docs)


class Layer(NamedTuple):
    """A swappable layer of the block (a norm, a feed-forward network): what parts.py names."""

    params: Callable  # cfg -> {local name: Param}
    forward: Callable  # (x, p, cfg) -> y, cache
    backward: Callable  # (dy, cache) -> dx, {local name: gradient}
    fused: dict = {}  # a stacked array -> the local names stacked in it, once per call


def normal(std: float) -> Init:
    return lambda rng, shape: rng.standard_normal(shape) * std


def fan_in(rng, shape):
    """N(0, 1/fan_in): a matrix reading a unit-scale input keeps its output at unit scale."""
    return rng.standard_normal(shape) * (1.0 / np.sqrt(shape[0]))


def residual_out(n_steps: int) -> Init:
    """fan_in further divided by sqrt(2 n_steps), for the matrices that WRITE into the residual
    stream: the 2 n_steps residual branches then add up to a bounded variance however deep the
    recursion (the GPT-2 trick)."""
    return lambda rng, shape: (
        rng.standard_normal(shape) * (1.0 / np.sqrt(2 * n_steps) / np.sqrt(shape[0]))
    )


def constant(value: float) -> Init:
    return lambda rng, shape: np.full(shape, value, dtype=np.float64)


zeros, ones = constant(0.0), constant(1.0)


def up_down_params(cfg, label: str) -> dict[str, Param]:
    """The two matrices of a one-hidden-layer feed-forward network (GELU, ReLU^2): w1 (d, F) up,
    reading the normed stream, and w2 (F, d) down, writing into the residual stream."""
    return {
        "w1": Param((cfg.d_model, cfg.d_ff), fan_in, True, f"{label} up projection"),
        "w2": Param((cfg.d_ff, cfg.d_model), residual_out(cfg.n_steps), True, f"{label} down"),
    }
