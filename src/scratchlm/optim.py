"""Adam/AdamW, the learning-rate schedule, gradient clipping and accumulation, by hand on NumPy.

Handles: one optimizer over a flat dict of named parameters, updated in place; decoupled weight
decay (AdamW) with a per-name opt-out; linear warm-up then cosine decay; clipping by the global L2
norm; summing the gradients of several micro-batches. Does not handle: parameter groups with
different learning rates, sparse gradients, AMSGrad, or any state beyond `t`, `m` and `v`.
"""

import math
from collections.abc import Callable, Collection

import numpy as np

from .errors import ConfigError, InputError
from .params import decays


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter); `weight_decay=0` is plain Adam.

    For each parameter p with gradient g, at step t = 1, 2, ...:

        p <- p * (1 - lr * weight_decay)                     only where no_decay(name) is false
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g * g
        p <- p - lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)

    The decay is scaled by the scheduled lr, as in PyTorch's AdamW, so it fades with the schedule.
    Parameters are the caller's arrays (e.g. `model.params`) and change in place; the arithmetic
    happens in their dtype, so a float32 model is updated in float32.
    """

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
        self.m = {name: np.zeros_like(p) for name, p in params.items()}
        self.v = {name: np.zeros_like(p) for name, p in params.items()}
        # Every intermediate of an update lands in one reusable buffer per dtype, sized for the
        # largest parameter, so a step allocates nothing.
        self._scratch: dict[np.dtype, np.ndarray] = {}

    def step(self, grads: dict[str, np.ndarray], lr: float | None = None) -> None:
        """Apply one update from `grads` (same names and shapes as the parameters)."""
        _check_same_arrays(self.params, grads, "gradient")
        lr = self.lr if lr is None else float(lr)
        self.t += 1
        # Both bias corrections fold into two scalars, which keeps the per-element work minimal:
        # lr * m_hat / (sqrt(v_hat) + eps) == step_size * m / (sqrt(v) * v_scale + eps).
        step_size = lr / (1.0 - self.beta1**self.t)
        v_scale = 1.0 / math.sqrt(1.0 - self.beta2**self.t)
        for name, p in self.params.items():
            g, m, v, buf = grads[name], self.m[name], self.v[name], self._buffer(p)
            if name in self.decayed:
                p *= 1.0 - lr * self.weight_decay
            m *= self.beta1
            np.multiply(g, 1.0 - self.beta1, out=buf)
            m += buf
            v *= self.beta2
            np.multiply(g, g, out=buf)
            buf *= 1.0 - self.beta2
            v += buf
            np.sqrt(v, out=buf)
            buf *= v_scale
            buf += self.eps
            np.divide(m, buf, out=buf)
            buf *= step_size
            p -= buf

    def state_dict(self) -> dict:
        """The optimizer state as `{"t": int, "m": {name: array}, "v": {name: array}}` (copies)."""
        return {
            "t": self.t,
            "m": {name: a.copy() for name, a in self.m.items()},
            "v": {name: a.copy() for name, a in self.v.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict()` (e.g. from a checkpoint); the moments keep the params' dtype."""
        if not isinstance(state, dict) or not {"t", "m", "v"} <= state.keys():
            raise InputError("optimizer state must be a dict with keys 't', 'm' and 'v'")
        _check_same_arrays(self.params, state["m"], "first-moment (m)")
        _check_same_arrays(self.params, state["v"], "second-moment (v)")
        self.t = int(state["t"])
        for name in self.params:
            np.copyto(self.m[name], state["m"][name])
            np.copyto(self.v[name], state["v"][name])

    def _buffer(self, p: np.ndarray) -> np.ndarray:
        buf = self._scratch.get(p.dtype)
        if buf is None or buf.size < p.size:
            size = max(a.size for a in self.params.values() if a.dtype == p.dtype)
            buf = self._scratch[p.dtype] = np.empty(size, dtype=p.dtype)
        return buf[: p.size].reshape(p.shape)


def _check_hyperparameters(lr, betas, eps, weight_decay) -> None:
    if not lr >= 0:
        raise ConfigError(f"learning rate must be >= 0, got {lr}")
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"Adam betas must be two numbers in [0, 1), got {betas}")
    if not eps > 0:
        raise ConfigError(f"Adam eps must be > 0, got {eps}")
    if not weight_decay >= 0:
        raise ConfigError(f"weight decay must be >= 0, got {weight_decay}")


def _check_same_arrays(params: dict, arrays: dict, what: str) -> None:
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


def lr_at(step: int, *, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """The learning rate at `step` (0-based): linear warm-up from 0 to `max_lr` over
    `warmup_steps`, cosine decay to `min_lr` at `total_steps`, then `min_lr` for good."""
    if not 0 <= warmup_steps <= total_steps:
        raise ConfigError(
            f"need 0 <= warmup_steps <= total_steps, got warmup_steps={warmup_steps}, "
            f"total_steps={total_steps}"
        )
    if not 0 <= min_lr <= max_lr:
        raise ConfigError(f"need 0 <= min_lr <= max_lr, got min_lr={min_lr}, max_lr={max_lr}")
    if step < 0:
        raise InputError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float | None) -> float:
    """Return the global L2 norm of all gradients, measured before clipping.

    When it exceeds `max_norm`, every gradient is scaled in place so the global norm becomes
    exactly `max_norm`. `max_norm` None or 0 means measure only. A non-finite norm is returned
    untouched and nothing is scaled: multiplying by 0 or NaN would hide the blow-up that the
    caller should stop on.
    """
    if max_norm is not None and max_norm < 0:
        raise ConfigError(f"max_norm must be >= 0, got {max_norm}")
    # fsum of per-tensor dot products: each dot is one fast BLAS call, and adding the partial sums
    # in float64 keeps the small tensors from vanishing next to the big ones.
    norm = math.sqrt(math.fsum(float(np.vdot(g, g)) for g in grads.values()))
    if max_norm and math.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
    return norm


def accumulate(
    total: dict[str, np.ndarray] | None, grads: dict[str, np.ndarray], weight: float
) -> dict[str, np.ndarray]:
    """Return `total + weight * grads` (a new dict when `total` is None, else `total` in place)."""
    if total is None:
        return {name: g * weight for name, g in grads.items()}
    if total.keys() != grads.keys():
        raise InputError("cannot accumulate gradients with different parameter names")
    for name, g in grads.items():
        total[name] += weight * g
    return total
