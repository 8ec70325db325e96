"""What every optimizer shares: parameters updated in place, a step count, decoupled weight decay
with a per-name opt-out, and its state as named SLOTS (one array per parameter each: Adam's `m` and
`v`, a momentum `m`), which is what a checkpoint stores (`opt.<slot>.<param>`, checkpoint.py).

A subclass says how one parameter moves (`update`) and, unless a momentum `m` per parameter is
all it keeps, which slots it keeps for which parameters (`slot_names`); `step` checks the gradients, counts the step and applies the decay. The
arithmetic happens in the parameters' dtype, so a float32 model is updated in float32, and every
intermediate of an update lands in one reusable buffer per dtype: a step allocates nothing.
Not handled: parameter groups with different learning rates, sparse gradients.
"""

from collections.abc import Callable, Collection

import numpy as np

from ..errors import ConfigError, InputError
from ..params import decays


class Optimizer:
    name = ""  # the key of OPTIMIZERS (optim/__init__.py) and of a checkpoint's `optimizer` entry

    def __init__(
        self,
        params: dict[str, np.ndarray],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        no_decay: Callable[[str], bool] | Collection[str] = lambda name: not decays(name),
    ):
        _check_hyperparameters(lr, betas, eps, weight_decay)
        self.params = params
        self.lr = float(lr)
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        skip = no_decay if callable(no_decay) else frozenset(no_decay).__contains__
        self.decayed = {name for name in params if self.weight_decay > 0 and not skip(name)}
        self.t = 0
        shapes = {name: p.shape for name, p in params.items()}
        self.slots = {
            slot: {name: np.zeros_like(params[name]) for name in names}
            for slot, names in self.slot_names(shapes).items()
        }
        self._scratch: dict[np.dtype, np.ndarray] = {}

    @classmethod
    def slot_names(cls, shapes: dict[str, tuple[int, ...]]) -> dict[str, list[str]]:
        """The state this optimizer keeps: slot -> the parameters that have an array in it. By
        default one momentum `m` for every parameter (SGD's and Lion's whole state)."""
        return {"m": list(shapes)}

    def update(self, name: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        """Move the parameter `name` (in place) by its gradient g at learning rate lr."""
        raise NotImplementedError

    def step(self, grads: dict[str, np.ndarray], lr: float | None = None) -> None:
        """Apply one update from `grads` (same names and shapes as the parameters)."""
        check_same_arrays(self.params, grads, "gradient")
        lr = self.lr if lr is None else float(lr)
        self.t += 1
        for name, p in self.params.items():
            if name in self.decayed:  # decoupled (AdamW): scaled by the scheduled lr, as PyTorch
                p *= 1.0 - lr * self.weight_decay
            self.update(name, p, grads[name], lr)

    def state_dict(self) -> dict:
        """`{"name": ..., "t": int, <slot>: {param name: array}, ...}` (copies)."""
        slots = {
            slot: {n: a.copy() for n, a in arrays.items()} for slot, arrays in self.slots.items()
        }
        return {"name": self.name, "t": self.t, **slots}

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict()` (e.g. from a checkpoint); the arrays keep the params' dtype.
        A state without a name is Adam's (checkpoints written before there were others)."""
        if not isinstance(state, dict) or "t" not in state:
            raise InputError("optimizer state must be a dict with the step count 't'")
        name = state.get("name", "adamw")
        if name != self.name:
            raise ConfigError(
                f"the optimizer state is {name}'s, not {self.name}'s: resume with optimizer "
                f"= {name!r}"
            )
        for slot, arrays in self.slots.items():
            check_same_arrays(arrays, state.get(slot), f"optimizer slot {slot!r}")
        self.t = int(state["t"])
        for slot, arrays in self.slots.items():
            for n, a in arrays.items():
                np.copyto(a, state[slot][n])

    def buffer(self, p: np.ndarray) -> np.ndarray:
        """Scratch space shaped like p, reused by every update (module docstring)."""
        buf = self._scratch.get(p.dtype)
        if buf is None or buf.size < p.size:
            size = max(a.size for a in self.params.values() if a.dtype == p.dtype)
            buf = self._scratch[p.dtype] = np.empty(size, dtype=p.dtype)
        return buf[: p.size].reshape(p.shape)


def _check_hyperparameters(lr, betas, eps, weight_decay) -> None:
    if not lr >= 0:
        raise ConfigError(f"learning rate must be >= 0, got {lr}")
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"optimizer betas must be two numbers in [0, 1), got {betas}")
    if not eps > 0:
        raise ConfigError(f"optimizer eps must be > 0, got {eps}")
    if not weight_decay >= 0:
        raise ConfigError(f"weight decay must be >= 0, got {weight_decay}")


def check_same_arrays(params: dict, arrays, what: str) -> None:
    """Raise InputError unless `arrays` has exactly the names and shapes of `params`."""
    if not isinstance(arrays, dict) or arrays.keys() != params.keys():
        given = set(arrays) if isinstance(arrays, dict) else set()
        missing = sorted(set(params) - given)
        extra = sorted(given - set(params))
        raise InputError(
            f"{what} names do not match the parameters: missing {missing}, unexpected {extra}"
        )
    for name, p in params.items():
        if np.shape(arrays[name]) != p.shape:
            raise InputError(
                f"{what} {name!r} has shape {np.shape(arrays[name])}, the parameter has {p.shape}"
            )
