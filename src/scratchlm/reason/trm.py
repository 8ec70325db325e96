"""The Tiny Recursive Model (Jolicoeur-Martineau 2025): recursion and one deep-supervision step.

The puzzle is embedded once, x = sqrt(d) [reg_emb; tok_emb[puzzle]]; the answer y and the latent
z (B, L, d) are carried from one supervision step to the next. One supervision step:

    repeat T times:                       the first T - 1 times without gradients
        repeat n times:  z = net(x + y + z)       think: update the latent from question + answer
        y = net(y + z)                             answer: update y from the latent
    logits = y[:, cells] @ head.w          the digit of every cell
    q = y[:, 0] . halt.w + halt.b          halting: "is the whole answer already right?"
    loss = CE(logits, solution) + halt_weight * BCE(q, every cell right)

The carry (y, z) leaves the step detached. Backpropagation runs through every call of the last
recursion ("trm"), through only its last two calls ("onestep": the one-step gradient HRM uses),
and stops at the states it started from: y and z entering the graded calls are constants, so
they and x collect gradient only inside it. A "direct" model is the network applied once:
y = net(x), the same heads, no carry.
"""

import math
from typing import NamedTuple

import numpy as np

from ..layers.cross_entropy import cross_entropy_backward, cross_entropy_forward
from ..layers.embedding import scatter_add_rows
from .config import ReasonConfig
from .layers import (
    halt_bce_backward,
    halt_bce_forward,
    stablemax_cross_entropy_backward,
    stablemax_cross_entropy_forward,
)
from .net import add_into, fuse, net_backward, net_forward, unfuse


class Step(NamedTuple):
    """What one supervision step gives."""

    y: np.ndarray  # (B, L, d) the carry, detached
    z: np.ndarray  # (B, L, d)
    predicted: np.ndarray  # (B, n_cells) the digit of each cell, argmax of the logits
    q: np.ndarray  # (B,) halting logits (zeros for a direct model)
    correct: np.ndarray  # (B,) bool: every cell right (only when the solution was given)
    loss: float
    ce: float
    bce: float
    grads: dict | None


def embed(puzzles, params, cfg: ReasonConfig):
    """puzzles (B, n_cells) ints -> x (B, L, d): the registers, then the cells."""
    B, R = len(puzzles), cfg.n_registers
    x = np.empty((B, cfg.seq_len, cfg.d_model), dtype=params["tok_emb"].dtype)
    x[:, :R] = params["reg_emb"]
    x[:, R:] = params["tok_emb"][puzzles]
    x *= math.sqrt(cfg.d_model)  # a Python float: float32 stays float32
    return x


def embed_backward(dx, puzzles, cfg: ReasonConfig) -> dict:
    """-> {"tok_emb", "reg_emb"}: each row sums dx over the positions that read it."""
    dx = dx * math.sqrt(cfg.d_model)
    R = cfg.n_registers
    dtok = scatter_add_rows((cfg.vocab_size, cfg.d_model), puzzles, dx[:, R:])  # (V, d)
    return {"tok_emb": dtok, "reg_emb": dx[:, :R].sum(axis=0)}


def initial_state(params, batch: int, cfg: ReasonConfig):
    """y and z before the first step: the fixed vectors y_init, z_init at every position."""
    shape = (batch, cfg.seq_len, cfg.d_model)
    y = np.broadcast_to(params["y_init"], shape).copy()
    z = np.broadcast_to(params["z_init"], shape).copy()
    return y, z


def call_kinds(cfg: ReasonConfig) -> list[str]:
    """The network calls of one supervision step in order: "z" (z = net(x + y + z)) or "y"."""
    return (["z"] * cfg.n + ["y"]) * cfg.T


def run_calls(x, y, z, fused, cfg: ReasonConfig, kinds: list[str], n_grad: int):
    """Run the calls `kinds` from (y, z); keep the caches of the last n_grad -> y, z, tape."""
    tape = []
    for i, kind in enumerate(kinds):
        if kind == "z":
            z, cache = net_forward(z + y + x, fused, cfg)
        else:
            y, cache = net_forward(y + z, fused, cfg)
        if i >= len(kinds) - n_grad:
            tape.append((kind, cache))
    return y, z, tape


def backward_calls(dy, tape, cfg: ReasonConfig):
    """Backpropagate dL/dy through the taped calls -> dx, summed fused weight gradients.

    Going back, dy and dz hold the gradient of the y and z of that moment; the z of the last
    call does not reach the loss (it only goes on in the carry), so dz starts at 0. Whatever is
    left in dy and dz at the start of the tape belongs to the constant states entering it."""
    dz, dx, total = np.zeros_like(dy), np.zeros_like(dy), None
    for kind, cache in reversed(tape):
        if kind == "y":  # y_new = net(y + z)
            d_in, g = net_backward(dy, cache, cfg)
            dy, dz = d_in, dz + d_in
        else:  # z_new = net(z + y + x)
            d_in, g = net_backward(dz, cache, cfg)
            dz = d_in
            dy += d_in
            dx += d_in
        total = add_into(total, g)
    return dx, total


def heads_forward(y, params, cfg: ReasonConfig):
    """y (B, L, d) -> logits (B, n_cells, V), q (B,) (zeros without a halting head)."""
    logits = y[:, cfg.n_registers :] @ params["head.w"]
    if "halt.w" not in params:
        return logits, np.zeros(len(y), dtype=y.dtype)
    return logits, y[:, 0] @ params["halt.w"] + params["halt.b"][0]


def heads_backward(dlogits, dq, y, params, cfg: ReasonConfig):
    """-> dy (B, L, d), the heads' gradients."""
    R = cfg.n_registers
    dy = np.zeros_like(y)
    dy[:, R:] = dlogits @ params["head.w"].T
    grads = {"head.w": np.einsum("bnd,bnv->dv", y[:, R:], dlogits)}
    if "halt.w" in params:
        dy[:, 0] += dq[:, None] * params["halt.w"]
        grads["halt.w"] = dq @ y[:, 0]
        grads["halt.b"] = np.array([dq.sum()], dtype=y.dtype)
    return dy, grads


def step_losses(logits, q, solutions, cfg: ReasonConfig):
    """-> predicted, correct, loss parts and their caches."""
    predicted = logits.argmax(axis=-1)
    if solutions is None:
        return predicted, np.zeros(len(q), dtype=bool), None
    correct = np.all(predicted == solutions, axis=1)
    if cfg.loss == "softmax":
        ce, c_ce = cross_entropy_forward(logits, solutions)
    else:
        ce, c_ce = stablemax_cross_entropy_forward(logits, solutions)
    bce, c_bce = (
        halt_bce_forward(q, correct.astype(q.dtype)) if cfg.kind != "direct" else (0.0, None)
    )
    return predicted, correct, (ce, bce, c_ce, c_bce)


def supervision_step(params, puzzles, y, z, cfg: ReasonConfig, solutions=None, grads=False) -> Step:
    """One supervision step from the carry (y, z) (ignored by a direct model); with `solutions`
    (B, n_cells) the losses, with `grads=True` also the gradients of every parameter."""
    fused = fuse(params, cfg)
    x = embed(puzzles, params, cfg)
    if cfg.kind == "direct":
        y, cache = net_forward(x, fused, cfg)
        tape = [("direct", cache)]
    else:
        y, z, tape = run_calls(x, y, z, fused, cfg, call_kinds(cfg), cfg.grad_calls if grads else 0)
    logits, q = heads_forward(y, params, cfg)
    predicted, correct, parts = step_losses(logits, q, solutions, cfg)
    ce, bce = (parts[0], parts[1]) if parts else (float("nan"), float("nan"))
    step = Step(y, z, predicted, q, correct, ce + cfg.halt_weight * bce, ce, bce, None)
    if not grads:
        return step
    return step._replace(grads=_backward(y, puzzles, params, cfg, tape, parts))


def _backward(y, puzzles, params, cfg: ReasonConfig, tape, parts) -> dict:
    _, _, c_ce, c_bce = parts
    if cfg.loss == "softmax":
        dlogits = cross_entropy_backward(c_ce)
    else:
        dlogits = stablemax_cross_entropy_backward(c_ce)
    dq = cfg.halt_weight * halt_bce_backward(c_bce) if c_bce is not None else None
    dy, grads = heads_backward(dlogits, dq, y, params, cfg)
    if cfg.kind == "direct":
        dx, fused_grads = net_backward(dy, tape[0][1], cfg)
    else:
        dx, fused_grads = backward_calls(dy, tape, cfg)
    grads |= embed_backward(dx, puzzles, cfg) | unfuse(fused_grads, cfg)
    return grads
