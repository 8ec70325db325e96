"""A linear map without bias, y = x @ W, for inputs of any leading shape (..., n_in).

The leading axes are flattened so that NumPy runs ONE matrix product (one BLAS call) instead of a
loop of small ones.
"""


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
