"""`ModelConfig`: the hyper-parameters of the Tiny Recursive Model (docs/design.md section 2.1) and
the parts it is made of (section "Variants": norm, position scheme, feed-forward network, one
shared block or a stack).

The field names are part of the model-file format, so they are fixed; `to_dict`/`from_dict` give the
JSON object stored in model files, and a file written before a field existed gets its default.
Each field states its rule next to it (checks.py); the checks run once, here, so layers can trust
their inputs.
"""

from dataclasses import asdict, dataclass, fields

from .checks import check_fields, checked
from .errors import ConfigError
from .parts import FFNS, NORMS, POSITIONS

MAX_VOCAB = 50_000


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = checked(low=1, high=MAX_VOCAB)
    d_model: int = checked(128, low=1)
    n_heads: int = checked(8, low=1)
    d_ff: int = checked(256, low=1)
    depth: int = checked(3, low=1)  # recursions of the one shared block (or blocks of the stack)
    max_seq_len: int = checked(80, low=1)
    cope_max_pos: int = checked(64, low=2)
    learned_pos: bool = True
    dyt_alpha_init: float = 0.5
    # Every step starts as a plain pre-norm residual step (scale 1); the scales then learn how much
    # each recursion contributes (block.py).
    residual_scale_init: float = 1.0
    adaptive_depth: bool = False
    max_depth: int = checked(8, low=1)
    halt_eps: float = checked(0.01, low=0, high=1, high_open=True)
    ponder_weight: float = 0.01
    # The swappable parts (parts.py); the defaults are the model of section 2.
    norm: str = checked("dyt", choices=tuple(NORMS))
    position: str = checked("cope", choices=tuple(POSITIONS))
    ffn: str = checked("swiglu", choices=tuple(FFNS))
    share_weights: bool = True  # one block applied `depth` times; False: `depth` distinct blocks
    norm_eps: float = checked(1e-5, low=0, low_open=True)  # rmsnorm and layernorm
    rope_base: float = checked(10000.0, low=1, low_open=True)

    def __post_init__(self):
        check_fields(self, "config field {!r}", ConfigError)
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.position == "rope" and self.d_head % 2:
            raise ConfigError(f"rope turns pairs of features: d_head ({self.d_head}) must be even")
        if self.adaptive_depth and not self.share_weights:
            raise ConfigError("adaptive depth needs the shared block: set share_weights = true")

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
