"""Small float64 models for tests, with some parameters drawn large so that they matter (CoPE
tables, positions, the head, the halting unit): fresh initialisations keep them near zero."""

import numpy as np

from scratchlm import Model, ModelConfig


def loud_model(seed: int, loud: tuple[str, ...], **config) -> Model:
    """A float64 model of ModelConfig(**config) whose parameters ending in one of `loud` are
    redrawn from a standard normal."""
    model = Model(ModelConfig(**config), seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():
        if name.endswith(loud):
            p[...] = rng.standard_normal(p.shape)
    return model
