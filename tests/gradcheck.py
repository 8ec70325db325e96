"""Central-difference gradient checking in float64, shared by the layer and model tests."""

import numpy as np

from scratchlm.layers.dropout import Dropout


def fixed_dropout(rate=0.3, seed=7):
    """A Dropout that draws the same masks every time it is made (0: none). The forward pass draws
    its masks in the same order on every call, so a fresh one per evaluation makes the masks
    constants: the finite differences and the backward pass then see one and the same function."""
    return Dropout(rate, seed) if rate else None


def training_loss(model, ids, targets, mask=None, dropout=0.0):
    """The loss `model.loss_and_grads` returns, computed by the forward pass alone: the function
    the whole-model checks differentiate numerically (a backward pass per evaluation would double
    their time and add nothing). dropout: a rate, drawn as `fixed_dropout` draws it."""
    logits, cache = model.forward(ids, dropout=fixed_dropout(dropout))
    return model._objective(logits, cache, targets, mask)[0]


def numerical_grad(f, x, eps=1e-5):
    """d f() / d x by central differences, perturbing the array `x` in place (and restoring it)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def rel_error(a, b):
    """Relative error of two tensors: ||a - b|| / max(||a||, ||b||)."""
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def assert_grads_close(f, arrays, analytic, tol=1e-6):
    """For each name: the numerical gradient of f w.r.t. arrays[name] matches analytic[name]."""
    for name, x in arrays.items():
        num = numerical_grad(f, x)
        assert np.linalg.norm(num) > 1e-8, f"{name}: gradient is zero, the check proves nothing"
        err = rel_error(num, analytic[name])
        assert err < tol, f"{name}: relative error {err:.2e}"
