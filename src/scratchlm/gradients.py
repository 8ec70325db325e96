"""Gradient analysis: how large the gradient is in each part of the model, and how much of the
block's gradient each recursion step contributes.

`GradientMeter` is fed every update's gradient (before clipping) and reports, at the end of an
interval (trainer.py), `{"norm": {part: mean L2 norm over the interval's updates}, "step_share":
[...]}`: a part is the prefix of the parameter names (`block.attn`, `blocks.1.ffn`, `norm_f`,
`head`; `embedding` for tok_emb and pos_emb, `block.scales` for the per-step residual scales). The
step shares come from one more forward/backward pass, on the first micro-batch the meter saw, with
every step's block gradient kept apart (`Model.step_gradient_norms`): step s's share is its
norm over the sum of all the steps' norms. With a shared block they say which recursions the block
learns from; in a stack of distinct blocks, which blocks learn most.
"""

import math

import numpy as np


def part_of(name: str) -> str:
    """The part a parameter belongs to (module docstring)."""
    if "." not in name:
        return "embedding"
    prefix = name.rsplit(".", 1)[0]
    return "block.scales" if prefix == "block" else prefix


class GradientMeter:
    def __init__(self, model):
        self.model = model
        self.parts: dict[str, list[str]] = {}
        for name in model.params:
            self.parts.setdefault(part_of(name), []).append(name)
        self.sums = dict.fromkeys(self.parts, 0.0)
        self.updates = 0
        self.probe = None  # the batch the step shares are measured on, always the same

    def add(self, grads: dict[str, np.ndarray], batch) -> float:
        """One update's gradient, and a micro-batch of it (the first one is kept as the probe)
        -> the gradient's global L2 norm (what clipping needs: computed once, here)."""
        if self.probe is None:
            self.probe = tuple(np.array(x) for x in batch)
        squares = []
        for part, names in self.parts.items():
            part_squares = [float(np.vdot(grads[n], grads[n])) for n in names]
            self.sums[part] += math.sqrt(math.fsum(part_squares))
            squares += part_squares
        self.updates += 1
        return math.sqrt(math.fsum(squares))

    def report(self) -> dict:
        """The interval's figures (module docstring); the sums start again from zero."""
        n = max(self.updates, 1)
        out = {"norm": {part: total / n for part, total in self.sums.items()}}
        if self.probe is not None:
            norms = self.model.step_gradient_norms(*self.probe)
            total = sum(norms)
            out["step_share"] = [x / total if total else 0.0 for x in norms]
        self.sums, self.updates = dict.fromkeys(self.parts, 0.0), 0
        return out
