"""Stochastic gradient descent with heavy-ball momentum (as PyTorch's SGD, no dampening):

    m <- beta1 * m + g          (beta1: the momentum; 0 is plain SGD)
    p <- p - lr * m

plus decoupled weight decay as AdamW's. It needs a learning rate about ten times Adam's here: its
steps are as large as the gradient, not normalised per element.
"""

import numpy as np

from .base import Optimizer


class SGD(Optimizer):
    name = "sgd"

    def update(self, name, p, g, lr):
        m, buf = self.slots["m"][name], self.buffer(p)
        m *= self.beta1
        m += g
        np.multiply(m, lr, out=buf)
        p -= buf
