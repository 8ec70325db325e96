"""Adam with decoupled weight decay (AdamW, Loshchilov & Hutter); `weight_decay=0` is plain Adam.

For each parameter p with gradient g, at step t = 1, 2, ...:

    p <- p * (1 - lr * weight_decay)                     only where no_decay(name) is false
    m <- beta1 * m + (1 - beta1) * g
    v <- beta2 * v + (1 - beta2) * g * g
    p <- p - lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)

The decay is scaled by the scheduled lr, as in PyTorch's AdamW, so it fades with the schedule.
"""

import math

import numpy as np

from .base import Optimizer


class AdamW(Optimizer):
    name = "adamw"

    @classmethod
    def slot_names(cls, shapes):
        return {"m": list(shapes), "v": list(shapes)}

    @property
    def m(self) -> dict[str, np.ndarray]:
        return self.slots["m"]

    @property
    def v(self) -> dict[str, np.ndarray]:
        return self.slots["v"]

    def update(self, name, p, g, lr):
        adam_update(self, name, p, g, lr)


def adam_update(opt: Optimizer, name: str, p, g, lr: float) -> None:
    """One Adam step of the parameter `name` with `opt`'s betas, eps, step count and m, v slots
    (AdamW's rule, also Muon's for the parameters it does not orthogonalise)."""
    m, v, buf = opt.slots["m"][name], opt.slots["v"][name], opt.buffer(p)
    # Both bias corrections fold into two scalars, which keeps the per-element work minimal:
    # lr * m_hat / (sqrt(v_hat) + eps) == step_size * m / (sqrt(v) * v_scale + eps).
    step_size = lr / (1.0 - opt.beta1**opt.t)
    v_scale = 1.0 / math.sqrt(1.0 - opt.beta2**opt.t)
    m *= opt.beta1
    np.multiply(g, 1.0 - opt.beta1, out=buf)
    m += buf
    v *= opt.beta2
    np.multiply(g, g, out=buf)
    buf *= 1.0 - opt.beta2
    v += buf
    np.sqrt(v, out=buf)
    buf *= v_scale
    buf += opt.eps
    np.divide(m, buf, out=buf)
    buf *= step_size
    p -= buf
