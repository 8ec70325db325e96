"""The configuration of a recursive reasoner and the table of its parameters.

A reasoner reads a puzzle of `n_cells` tokens (0 = empty, 1..6 = a digit) after `n_registers`
extra positions (the paper's "puzzle embedding" positions: scratch space, and the place where the
halting head reads), so every sequence has `seq_len = n_registers + n_cells` positions.

`kind` picks what is trained (docs/reason.md):
- "trm": the Tiny Recursive Model, gradients through every call of the last recursion;
- "onestep": the same, gradients through only the last two calls (HRM's one-step approximation);
- "direct": the network applied once to the puzzle, no recursion, no deep supervision. With
  `n_layers = 2` it is "the same network applied once"; with `n_layers = 2 T (n + 1)` it is a
  one-pass network as deep as one supervision step of the TRM.
"""

from dataclasses import asdict, dataclass, fields

import numpy as np

from ..errors import ConfigError
from ..layers.param import Param, constant, fan_in, normal, zeros

TASK = "sudoku6x6"
KINDS = ("trm", "onestep", "direct")
MIXERS = ("mlp", "attention")
LOSSES = ("softmax", "stablemax")


@dataclass
class ReasonConfig:
    task: str = TASK
    kind: str = "trm"
    mixer: str = "mlp"  # "mlp": an MLP across the positions (fixed-size grids); or "attention"
    d_model: int = 16
    n_layers: int = 2
    expansion: float = 4.0  # SwiGLU width: about expansion * 2/3 * its input size, as the paper
    n_heads: int = 4  # attention only
    n_registers: int = 1
    n: int = 6  # latent updates z <- net(x + y + z) per recursion
    T: int = 3  # recursions per supervision step (the first T - 1 without gradients)
    n_sup: int = 16  # supervision steps at most
    loss: str = "stablemax"  # cross-entropy over cells: "stablemax" (the paper's code) or "softmax"
    halt_weight: float = 0.5  # weight of the halting head's binary cross-entropy
    n_cells: int = 36
    vocab_size: int = 7
    norm_eps: float = 1e-5
    rope_base: float = 10000.0  # attention only

    def __post_init__(self):
        checks = [
            (self.task == TASK, f"task must be {TASK!r}"),
            (self.kind in KINDS, f"kind must be one of {', '.join(KINDS)}"),
            (self.mixer in MIXERS, f"mixer must be one of {', '.join(MIXERS)}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
        ]
        for name in ("d_model", "n_layers", "n_heads", "n_registers", "n", "T", "n_sup"):
            value = getattr(self, name)
            checks.append((isinstance(value, int) and value >= 1, f"{name} must be an int >= 1"))
        checks.append((self.expansion > 0, "expansion must be > 0"))
        if self.mixer == "attention":
            d_head, odd = divmod(self.d_model, self.n_heads)
            checks.append((odd == 0 and d_head % 2 == 0, "d_model / n_heads must be an even int"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{message}, got {asdict(self)}")

    @property
    def seq_len(self) -> int:
        return self.n_registers + self.n_cells

    max_seq_len = seq_len  # the name rope_forward reads

    @property
    def calls_per_step(self) -> int:
        """Network calls in one supervision step (1 for a one-pass network)."""
        return 1 if self.kind == "direct" else self.T * (self.n + 1)

    @property
    def grad_calls(self) -> int:
        """How many of the last calls of a step the gradient flows through."""
        return {"trm": self.n + 1, "onestep": 2, "direct": 1}[self.kind]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ReasonConfig":
        if not isinstance(d, dict) or d.get("task") != TASK:
            raise ConfigError(
                f"not a puzzle model (its config has no task {TASK!r}); "
                "train one with `scratchlm sudoku train`"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**d)


def width(cfg: ReasonConfig, n_in: int) -> int:
    """The hidden width of a SwiGLU reading n_in features: expansion * 2/3 * n_in (the 2/3 keeps
    its three matrices as large as a plain MLP's two), rounded up to a multiple of 8."""
    return 8 * int(np.ceil(cfg.expansion * n_in * 2 / 3 / 8))


def _trunc_normal_std1(rng, shape):
    """y_init and z_init: N(0, 1) truncated at 2 (the paper's trunc_normal_init, std 1)."""
    x = rng.standard_normal(shape)
    while np.any(np.abs(x) > 2):
        bad = np.abs(x) > 2
        x[bad] = rng.standard_normal(int(bad.sum()))
    return x


def layer_params(cfg: ReasonConfig) -> dict[str, Param]:
    """One layer's parameters by local name. Matrices are N(0, 1/fan_in) (LeCun, as the paper)."""
    d, L = cfg.d_model, cfg.seq_len
    if cfg.mixer == "mlp":  # a SwiGLU across positions, the same for every feature
        F = width(cfg, L)
        mix = {"mix.w1": (L, F), "mix.w3": (L, F), "mix.w2": (F, L)}
    else:
        mix = {f"attn.{w}": (d, d) for w in ("wq", "wk", "wv", "wo")}
    F = width(cfg, d)
    ffn = {"ffn.w1": (d, F), "ffn.w3": (d, F), "ffn.w2": (F, d)}
    return {name: Param(shape, fan_in, True, "layer matrix") for name, shape in (mix | ffn).items()}


def param_table(cfg: ReasonConfig) -> dict[str, Param]:
    """Every parameter of a reasoner by its name in a model file."""
    d = cfg.d_model
    # Embeddings N(0, 1/d), multiplied by sqrt(d) when read: unit-scale inputs (as the paper).
    table = {
        "tok_emb": Param((cfg.vocab_size, d), normal(d**-0.5), True, "cell embedding"),
        "reg_emb": Param((cfg.n_registers, d), zeros, True, "register positions (zero-init)"),
        "head.w": Param((d, cfg.vocab_size), fan_in, True, "digit of each cell, from y"),
    }
    if cfg.kind != "direct":
        # The halting head starts at "not done yet" (sigmoid(-5)) and learns from zero weights.
        table["halt.w"] = Param((d,), zeros, True, "halting head, from y at position 0")
        table["halt.b"] = Param((1,), constant(-5.0), True, "halting bias")
        table["y_init"] = Param((d,), _trunc_normal_std1, False, "fixed start of y (not trained)")
        table["z_init"] = Param((d,), _trunc_normal_std1, False, "fixed start of z (not trained)")
    for k in range(cfg.n_layers):
        table |= {f"layers.{k}.{n}": p for n, p in layer_params(cfg).items()}
    return table


FROZEN = ("y_init", "z_init")  # stored in the model file, never updated


def param_shapes(cfg: ReasonConfig) -> dict[str, tuple[int, ...]]:
    return {name: p.shape for name, p in param_table(cfg).items()}


def init_params(cfg: ReasonConfig, seed: int, dtype="float32") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: p.init(rng, p.shape).astype(dtype) for n, p in param_table(cfg).items()}
