"""A linear map without bias, y = x @ W, for inputs of any leading shape (..., n_in), and k such
maps of the same input with their weights stacked, y_i = x @ W_i.

The leading axes are flattened so that NumPy runs ONE matrix product (one BLAS call) instead of a
loop of small ones. The stacked form gives each y_i as its own contiguous array: elementwise work
on them runs faster than on the column blocks of one concatenated product. Stacked weights whose
matrices lie side by side in memory (`params.weights(..., side_by_side=True)`, a decoding cache's) are
multiplied as that one concatenated matrix instead: for a single token one wide product is faster
than k narrow ones.
"""

import numpy as np


def linear_forward(x, w):
    """x (..., n_in), w (n_in, n_out) -> y (..., n_out)."""
    y = (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[1])  # (N, n_out)
    return y, (x, w)


def linear_backward(dy, cache):
    """dL/dx = dy W^T;  dL/dW = x^T dy  (summed over every leading position)."""
    x, w = cache
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, n_out)
    dw = x.reshape(-1, x.shape[-1]).T @ dy2  # (n_in, n_out)
    dx = (dy2 @ w.T).reshape(x.shape)  # (..., n_in)
    return dx, dw


def stacked_linear_forward(x, w):
    """x (..., n_in), w (k, n_in, n_out) -> y (k, ..., n_out), y[i] = x @ w[i]."""
    k, n_in, n_out = w.shape
    x2 = x.reshape(-1, n_in)  # (N, n_in)
    side_by_side = w.transpose(1, 0, 2)  # (n_in, k, n_out)
    if side_by_side.flags.c_contiguous:  # [w_0 | w_1 | ...] in memory: one (N, k n_out) product
        y = (x2 @ side_by_side.reshape(n_in, k * n_out)).reshape(-1, k, n_out).transpose(1, 0, 2)
    else:
        y = x2 @ w  # (k, N, n_out): k products of the same (N, n_in) input
    return y.reshape(k, *x.shape[:-1], n_out), (x, w)


def stacked_linear_backward(dy, cache):
    """dL/dx = sum_i dy[i] W_i^T;  dL/dW_i = x^T dy[i]."""
    x, w = cache
    dy2 = dy.reshape(w.shape[0], -1, dy.shape[-1])  # (k, N, n_out)
    dw = x.reshape(-1, x.shape[-1]).T @ dy2  # (k, n_in, n_out)
    dx = np.matmul(dy2, w.swapaxes(1, 2)).sum(axis=0)  # (N, n_in)
    return dx.reshape(x.shape), dw
