"""The swappable parts of the model, named in ONE place.

A `ModelConfig` chooses each part by name (docs/design.md, "Variants"); the block and the model ask
`parts_of(cfg)` for them and never test a name themselves. To add a part, write its layer file
(its parameters, forward and backward: layers/param.py's `Layer`, or layers/attention.py's
`Position` for a position scheme) and add ONE line to the table it belongs to here; config.py
accepts the new name from then on.
"""

import functools
from typing import NamedTuple

from .layers.attention import NO_POSITION, Position
from .layers.cope import COPE
from .layers.dyt import DYT
from .layers.gelu import GELU
from .layers.layernorm import LAYERNORM
from .layers.param import Layer
from .layers.relu2 import RELU2
from .layers.rmsnorm import RMSNORM
from .layers.rope import ROPE
from .layers.swiglu import SWIGLU

NORMS: dict[str, Layer] = {"dyt": DYT, "rmsnorm": RMSNORM, "layernorm": LAYERNORM}
POSITIONS: dict[str, Position] = {"cope": COPE, "rope": ROPE, "none": NO_POSITION}
FFNS: dict[str, Layer] = {"swiglu": SWIGLU, "gelu": GELU, "relu2": RELU2}


class Parts(NamedTuple):
    norm: Layer  # every norm: norm1 and norm2 of each block, norm_f before the head
    position: Position  # inside attention
    ffn: Layer  # the feed-forward network


@functools.lru_cache(maxsize=64)
def parts_of(cfg) -> Parts:
    return Parts(NORMS[cfg.norm], POSITIONS[cfg.position], FFNS[cfg.ffn])
