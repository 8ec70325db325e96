"""The learning-rate schedule, gradient clipping and gradient accumulation, shared by every
optimizer: linear warm-up then cosine decay; clipping by the global L2 norm; summing the gradients
of several micro-batches."""

import math

import numpy as np

from ..errors import ConfigError, InputError


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


def clip_grad_norm(
    grads: dict[str, np.ndarray], max_norm: float | None, norm: float | None = None
) -> float:
    """Return the global L2 norm of all gradients, measured before clipping (or `norm`, when the
    caller has measured it already).

    When it exceeds `max_norm`, every gradient is scaled in place so the global norm becomes
    exactly `max_norm`. `max_norm` None or 0 means measure only. A non-finite norm is returned
    untouched and nothing is scaled: multiplying by 0 or NaN would hide the blow-up that the
    caller should stop on.
    """
    if max_norm is not None and max_norm < 0:
        raise ConfigError(f"max_norm must be >= 0, got {max_norm}")
    if norm is None:
        # fsum of per-tensor dot products: each dot is one fast BLAS call, and adding the partial
        # sums in float64 keeps the small tensors from vanishing next to the big ones.
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
