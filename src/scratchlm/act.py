"""Adaptive depth: per-token halting in the recursive block (ACT, Graves 2016; docs/design.md section 2.8).

The shared block runs at most `max_depth` steps. After step s computes the new state h^(s+1), every
token still running asks its halting unit

    p_t = sigmoid(h_t^(s+1) . halt.w + halt.b)

and halts when its accumulated probability c_t + p_t reaches 1 - halt_eps (or at the last step),
with weight R_t = 1 - c_t (the remainder) and depth N_t = s + 1; otherwise it continues with
weight p_t. The block's output is the mixture sum_s weight_t^s h_t^(s+1). A halted token's state
stays frozen and other tokens keep attending to keys and values recomputed from it, so every step
runs the block on the whole (B, T, d) tensor and merely keeps halted rows; the loop stops once every
token (padding included) has halted. The ponder cost mean(N_t + R_t) pushes towards halting early.

With a key/value cache (decoding), the steps read and extend the cache as in block.py. When the loop
stops early, a later token may still run the skipped steps and must find the new tokens' keys there:
they are written at once from the tokens' frozen states, as the full forward pass computes them.

Handled here: the halting loop, the forward and the exact backward pass for fixed halting decisions
(which step each token stops at is a constant, as in Graves 2016), the ponder cost and depth
statistics. Not handled: the block itself (block.py), and any saving of compute inside a step -
halted tokens are recomputed and discarded.
"""

from typing import NamedTuple

import numpy as np

from .block import block_keys_values, block_step_backward, block_step_forward
from .layers.activations import sigmoid
from .layers.param import Param, zeros


def halt_params(cfg) -> dict[str, Param]:
    # Zeros: every token starts with p = sigmoid(0) = 1/2, so it halts after two steps, and the
    # ponder cost and the loss then teach each token its own depth. w is decayed like a matrix.
    return {
        "w": Param((cfg.d_model,), zeros, True, "halting unit"),
        "b": Param((1,), zeros, False, "halting bias"),
    }


class ActStep(NamedTuple):
    block: tuple  # the block step's own cache
    h_new: np.ndarray  # (B, T, d) state computed by this step (kept only where `running`)
    prob: np.ndarray  # (B, T) halting probability p of this step
    running: np.ndarray  # (B, T) bool: the token had not halted before this step
    halts: np.ndarray  # (B, T) bool: the token halts at this step
    weight: np.ndarray  # (B, T) its mixture weight: p, R or 0


class ActCache(NamedTuple):
    steps: list[ActStep]
    N: np.ndarray  # (B, T) int: steps each token ran (its depth)
    R: np.ndarray  # (B, T) remainders 1 - (sum of the p's before its halting step)


def act_forward(h, w, cfg, positions=None, kv=None, dropout=None):
    """h (B, T, d) after the embedding, w: the call's Weights -> the block's output mixture
    (B, T, d) and a cache whose N, R (B, T) are each token's depth and remainder.
    dropout: None, or a `Dropout` (training) applied inside every block step."""
    B, T, _ = h.shape
    c = np.zeros((B, T), dtype=h.dtype)  # probability accumulated by the steps that did not halt
    running = np.ones((B, T), dtype=bool)
    N = np.zeros((B, T), dtype=np.intp)
    R = np.zeros((B, T), dtype=h.dtype)
    out = np.zeros_like(h)
    steps = []
    for s in range(cfg.max_depth):
        h_new, cache_block = block_step_forward(h, w, s, cfg, positions, kv, dropout)  # (B, T, d)
        prob = sigmoid(h_new @ w.halt["w"] + w.halt["b"])  # (B, T)
        halts = running & ((c + prob >= 1.0 - cfg.halt_eps) | (s == cfg.max_depth - 1))
        goes_on = running & ~halts
        weight = np.where(halts, 1.0 - c, np.where(goes_on, prob, 0.0))  # (B, T)
        N[halts] = s + 1
        R[halts] = weight[halts]
        c += np.where(goes_on, prob, 0.0)
        out += weight[..., None] * h_new
        # A halted token's state is frozen: the next step still reads it (as keys and values).
        h = np.where(running[..., None], h_new, h)  # (B, T, d)
        steps.append(ActStep(cache_block, h_new, prob, running, halts, weight))
        running = goes_on
        if not running.any():
            break
    if kv is not None and len(steps) < cfg.max_depth:
        kv.fill(range(len(steps), cfg.max_depth), *block_keys_values(h, w, cfg, positions))
    return out, ActCache(steps, N, R)


# Backward, for fixed halting decisions. With out = sum_s weight^s h_new^s and per token
#   weight^s = p^s before its halting step n,  weight^n = R = 1 - sum_{s<n} p^s:
#   dweight^s = <dout, h_new^s>,  dR_total = dR (ponder) + dweight^n,  dp^s = dweight^s - dR_total,
#   p = sigmoid(a), a = h_new . w + b:  da = dp p (1 - p),  dw += da h_new,  db += da,
#   dh_new^s = weight^s dout + da w + (dstate^(s+1) where the token ran, as h^(s+1) = h_new^s),
#   dstate^s = block_step_backward(dh_new^s) + (dstate^(s+1) where the token was already frozen).
# Steps run in reverse, so a token's halting step (its dR_total) comes before its earlier steps.
def act_backward(dout, dR, cache, w, grads, cfg):
    """dout (B, T, d): dL/d(mixture), dR (B, T): dL/dR from the ponder cost -> dL/dh (B, T, d).

    Adds the gradients of the block, the scales and the halting unit into `grads`
    (Weights-shaped, zeros at first: params.zero_block_grads).
    """
    halt_w = w.halt["w"]
    dstate = np.zeros_like(dout)  # nothing reads the state after the last step; only the mixture
    dR = np.array(dR, dtype=dout.dtype)  # (B, T), grows by dweight at each token's halting step
    for step in reversed(cache.steps):
        dweight = np.einsum("btd,btd->bt", dout, step.h_new)  # (B, T)
        dR += np.where(step.halts, dweight, 0.0)
        goes_on = step.running & ~step.halts
        da = np.where(goes_on, dweight - dR, 0.0) * step.prob * (1.0 - step.prob)  # (B, T)
        grads.halt["w"] += np.tensordot(da, step.h_new, axes=2)  # (d,)
        grads.halt["b"] += da.sum()
        ran = step.running[..., None]
        dh_new = np.where(ran, dstate, 0.0) + step.weight[..., None] * dout + da[..., None] * halt_w
        dstate = np.where(ran, 0.0, dstate) + block_step_backward(dh_new, step.block, w, grads, cfg)
    return dstate


def ponder_cost(N, R, mask):
    """mean(N + R) over the counted positions (mask None: all) -> (cost, dcost/dR (B, T))."""
    counted = np.ones_like(R) if mask is None else np.asarray(mask, dtype=R.dtype)
    total = counted.sum()
    return float((counted * (N + R)).sum() / total), counted / total


class Depth(NamedTuple):
    """How deep the counted tokens went: how many they are, their mean, least and most depth.
    The one record of depth statistics: a forward pass's, a shard's, an update's, a log row's."""

    count: float
    mean: float
    min: int
    max: int

    @classmethod
    def of(cls, N, mask=None) -> "Depth":
        """Of the depths N (B, T) at the positions the mask counts (None: all)."""
        counted = N if mask is None else N[np.asarray(mask, dtype=bool)]
        return cls(
            float(counted.size), float(counted.mean()), int(counted.min()), int(counted.max())
        )

    @classmethod
    def merged(cls, parts: list["Depth"]) -> "Depth":
        """Of all the tokens of `parts` together (the mean weighted by the counts)."""
        count = sum(p.count for p in parts)
        mean = sum(p.count * p.mean for p in parts) / count
        return cls(count, mean, min(p.min for p in parts), max(p.max for p in parts))

    def row(self) -> dict:
        """As the fields of a log or metrics row."""
        return {"depth_mean": self.mean, "depth_min": self.min, "depth_max": self.max}
