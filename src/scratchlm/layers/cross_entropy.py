"""Softmax cross-entropy over the vocabulary, averaged over the target positions that count.

    loss = sum(mask * nll) / sum(mask),   nll = -log softmax(logits)[target]

`mask` (B, T) is 1 where a target counts (0 on padding); None counts every position. The caller
validates the mask (an all-zero mask is an error, see model.py).
"""

import numpy as np

from .activations import log_softmax


def cross_entropy_forward(logits, targets, mask=None):
    """logits (B, T, V), targets (B, T) int, mask (B, T) or None -> (scalar loss, cache)."""
    logp = log_softmax(logits)  # (B, T, V)
    nll = -np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # (B, T)
    w = np.ones_like(nll) if mask is None else mask.astype(logits.dtype)
    count = w.sum()
    loss = float((nll * w).sum() / count)
    return loss, (logp, targets, w / count)


# d loss / d logits = (softmax - onehot(target)) * mask / sum(mask)
def cross_entropy_backward(cache):
    logp, targets, weight = cache
    dlogits = np.exp(logp)  # (B, T, V)
    np.put_along_axis(
        dlogits,
        targets[..., None],
        np.take_along_axis(dlogits, targets[..., None], axis=-1) - 1.0,
        axis=-1,
    )
    dlogits *= weight[..., None]
    return dlogits
