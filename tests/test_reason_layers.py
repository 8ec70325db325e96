"""Float64 central-difference checks of the reasoner's own layers (reason/layers.py), each
through L = sum(out * R) with a fixed random R, as tests/test_layers.py does for the others."""

import numpy as np
import pytest
from gradcheck import assert_grads_close

from scratchlm.reason.config import ReasonConfig
from scratchlm.reason.layers import (
    attention_backward,
    attention_forward,
    halt_bce_backward,
    halt_bce_forward,
    post_norm_backward,
    post_norm_forward,
    stablemax_cross_entropy_backward,
    stablemax_cross_entropy_forward,
    token_mix_backward,
    token_mix_forward,
)

CFG = ReasonConfig(d_model=8, n_heads=2, n_cells=4, n_registers=1, mixer="attention")


def rand(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


def check(forward, backward, x, p: dict, seed=0):
    """forward() -> (out, cache) reads x and the weights p; backward(dout, cache) -> dx, dp."""
    out, cache = forward()
    R = rand(seed + 100, *out.shape)
    dx, dp = backward(R, cache)
    assert_grads_close(lambda: np.sum(forward()[0] * R), {"x": x} | p, {"x": dx} | dp)


def test_post_norm():
    u = rand(1, 2, 3, 5)
    check(lambda: post_norm_forward(u, CFG), lambda d, c: (post_norm_backward(d, c), {}), u, {})
    y, _ = post_norm_forward(u, CFG)
    assert np.allclose(
        np.sqrt((y**2).mean(axis=-1)), 1.0, atol=1e-4
    )  # unit root-mean-square (up to eps)


def test_token_mix():
    h, p = rand(2, 2, 5, 3), {"w13": rand(3, 2, 5, 6), "w2": rand(4, 6, 5)}
    check(lambda: token_mix_forward(h, p, CFG), token_mix_backward, h, p)


def test_token_mix_mixes_positions_not_features():
    """Feature j of the output depends only on feature j of the input, at every position."""
    h, p = rand(5, 1, 5, 3), {"w13": rand(6, 2, 5, 6), "w2": rand(7, 6, 5)}
    out, _ = token_mix_forward(h, p, CFG)
    h2 = h.copy()
    h2[:, :, 1] += 1.0  # change feature 1 everywhere
    out2, _ = token_mix_forward(h2, p, CFG)
    assert np.allclose(out[:, :, [0, 2]], out2[:, :, [0, 2]])
    assert not np.allclose(out[:, :, 1], out2[:, :, 1])


def test_attention():
    h, p = rand(8, 2, 5, 8), {"w_qkv": rand(9, 3, 8, 8) * 0.5, "wo": rand(10, 8, 8) * 0.5}
    check(lambda: attention_forward(h, p, CFG), attention_backward, h, p)


def test_attention_is_not_causal():
    """The first position sees the last one (a Sudoku cell depends on cells after it)."""
    h, p = rand(11, 1, 5, 8), {"w_qkv": rand(12, 3, 8, 8), "wo": rand(13, 8, 8)}
    out, _ = attention_forward(h, p, CFG)
    h2 = h.copy()
    h2[0, -1] += 1.0
    out2, _ = attention_forward(h2, p, CFG)
    assert not np.allclose(out[0, 0], out2[0, 0])


@pytest.mark.parametrize("scale", [0.5, 3.0])  # logits around 0, and far on both sides of it
def test_stablemax_cross_entropy(scale):
    logits = rand(14, 2, 3, 7) * scale
    targets = np.random.default_rng(15).integers(0, 7, size=(2, 3))
    loss, cache = stablemax_cross_entropy_forward(logits, targets)
    d = stablemax_cross_entropy_backward(cache)
    assert_grads_close(
        lambda: stablemax_cross_entropy_forward(logits, targets)[0], {"x": logits}, {"x": d}
    )


def test_stablemax_is_a_distribution_and_huge_logits_stay_finite():
    x = np.array([[[-1e30, 0.0, 1e30, 5.0]]])
    loss, (_, _, s, total) = stablemax_cross_entropy_forward(x, np.array([[2]]))
    assert np.isfinite(loss) and loss >= 0
    p = rand(16, 4, 6) * 4
    _, (_, _, s, total) = stablemax_cross_entropy_forward(p[None], np.zeros((1, 4), dtype=int))
    assert np.allclose((s / total).sum(axis=-1), 1.0) and np.all(s > 0)


def test_halt_bce():
    q = rand(17, 6) * 3
    t = np.array([0, 1, 1, 0, 1, 0], dtype=float)
    _, cache = halt_bce_forward(q, t)
    d = halt_bce_backward(cache)
    assert_grads_close(lambda: halt_bce_forward(q, t)[0], {"q": q}, {"q": d})
    big, _ = halt_bce_forward(np.array([800.0, -800.0]), np.array([0.0, 1.0]))
    assert big == pytest.approx(800.0)  # no overflow: the loss of a confident wrong answer
