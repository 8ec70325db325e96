"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the SIGN of an
interpolation of momentum and gradient, so every element moves by exactly lr:

    u <- sign(beta1 * m + (1 - beta1) * g)
    p <- p - lr * u
    m <- beta2 * m + (1 - beta2) * g

plus decoupled weight decay as AdamW's. The paper's betas are (0.9, 0.99) and its learning rate
3-10x smaller than AdamW's (the sign makes each step as large as Adam's largest).
"""

import numpy as np

from .base import Optimizer


class Lion(Optimizer):
    name = "lion"

    def update(self, name, p, g, lr):
        m, buf = self.slots["m"][name], self.buffer(p)
        np.multiply(m, self.beta1, out=buf)
        buf += (1.0 - self.beta1) * g
        np.sign(buf, out=buf)
        buf *= lr
        p -= buf
        m *= self.beta2
        m += (1.0 - self.beta2) * g
