"""`ModelConfig`: the hyper-parameters of the Tiny Recursive Model (docs/design.md section 2.1).

The field names are part of the model-file format, so they are fixed; `to_dict`/`from_dict` give the
JSON object stored in model files. Validation happens once, here, so layers can trust their inputs.
"""

from dataclasses import asdict, dataclass, fields

from .checks import is_int, is_number
from .errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int = 128
    n_heads: int = 8
    d_ff: int = 256
    depth: int = 3  # recursions of the one shared block
    max_seq_len: int = 80
    cope_max_pos: int = 64
    learned_pos: bool = True
    dyt_alpha_init: float = 0.5
    # Every step starts as a plain pre-norm residual step (scale 1); the scales then learn how much
    # each recursion contributes. Depth-dependence of the init lives in the output projections
    # instead (see params.py), which keeps the residual stream's variance bounded.
    residual_scale_init: float = 1.0
    adaptive_depth: bool = False
    max_depth: int = 8
    halt_eps: float = 0.01
    ponder_weight: float = 0.01

    def __post_init__(self):
        positive = ("vocab_size", "d_model", "n_heads", "d_ff", "depth", "max_seq_len")
        for name in positive + ("cope_max_pos", "max_depth"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ConfigError(
                    f"config field {name!r} must be a positive integer, got {value!r}"
                )
        if self.cope_max_pos < 2:
            raise ConfigError(f"config field 'cope_max_pos' must be >= 2, got {self.cope_max_pos}")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.vocab_size > 50_000:
            raise ConfigError(f"vocab_size {self.vocab_size} is over the limit of 50,000")
        for name in ("dyt_alpha_init", "residual_scale_init", "ponder_weight", "halt_eps"):
            value = getattr(self, name)
            if not is_number(value):
                raise ConfigError(f"config field {name!r} must be a number, got {value!r}")
        if not 0.0 <= self.halt_eps < 1.0:
            raise ConfigError(f"halt_eps must be in [0, 1), got {self.halt_eps}")
        for name in ("learned_pos", "adaptive_depth"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"config field {name!r} must be true or false")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_steps(self) -> int:
        """How many times the block may run: the length of the per-step scale vectors."""
        return self.max_depth if self.adaptive_depth else self.depth

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"model config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown model config field(s): {', '.join(unknown)}")
        if "vocab_size" not in d:
            raise ConfigError("model config is missing 'vocab_size'")
        return cls(**d)
