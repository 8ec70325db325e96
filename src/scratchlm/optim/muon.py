"""Muon (Jordan et al. 2024): momentum whose update is ORTHOGONALISED, for the 2-D matrices inside
the block(s); AdamW for everything else (embeddings, head, norms, scales, tables), as
modded-nanogpt and nanochat do.

For a matrix W (rows, cols) with gradient G:

    m <- beta1 * m + G
    U  = G + beta1 * m                           Nesterov momentum
    O  = NewtonSchulz(U)                         ~ the nearest semi-orthogonal matrix, U V^T of U's SVD
    W <- W - lr * 0.2 * sqrt(max(rows, cols)) * O

Orthogonalising gives every direction of the update the same size, however unequal the gradient's
singular values. The factor 0.2 sqrt(max(rows, cols)) gives the update the root-mean-square of a
typical AdamW update (Liu et al. 2025, "Muon is Scalable for LLM Training"), so both halves share
one learning rate and schedule. Decoupled weight decay as AdamW's.

Newton-Schulz: X = U / ||U||_F, then 5 times X <- a X + (b A + c A^2) X with A = X X^T and the
quintic coefficients (3.4445, -4.7750, 2.0315) of Jordan et al., which push every singular value
into about [0.7, 1.2] in few steps (not exactly to 1: close enough, and much faster).
"""

import math

import numpy as np

from .adamw import adam_update
from .base import Optimizer

NS_STEPS = 5
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalised(name: str, shape: tuple[int, ...]) -> bool:
    """The block's matrices (attention and feed-forward projections): 2-D, inside block(s)."""
    return len(shape) == 2 and name.startswith(("block.", "blocks."))


def newton_schulz(u: np.ndarray, steps: int = NS_STEPS) -> np.ndarray:
    """u (rows, cols) -> an approximately semi-orthogonal matrix with u's singular vectors."""
    a, b, c = NS_COEFFICIENTS
    x = u / (np.linalg.norm(u) + 1e-7)
    wide = x.shape[0] <= x.shape[1]
    if not wide:  # iterate on the small Gram matrix: X X^T of the wide orientation
        x = x.T
    for _ in range(steps):
        A = x @ x.T  # (r, r), r = min(rows, cols)
        x = a * x + (b * A + c * (A @ A)) @ x
    return x if wide else x.T


class Muon(Optimizer):
    name = "muon"

    @classmethod
    def slot_names(cls, shapes):
        adam = [name for name, shape in shapes.items() if not orthogonalised(name, shape)]
        return {"m": list(shapes), "v": adam}

    def update(self, name, p, g, lr):
        if name in self.slots["v"]:
            adam_update(self, name, p, g, lr)
            return
        m = self.slots["m"][name]
        m *= self.beta1
        m += g
        o = newton_schulz(g + self.beta1 * m)  # (rows, cols)
        p -= (lr * 0.2 * math.sqrt(max(p.shape))) * o.astype(p.dtype, copy=False)
