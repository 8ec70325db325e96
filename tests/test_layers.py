"""Float64 central-difference checks of every layer's backward pass, one layer at a time.

Each layer is checked through the scalar L = sum(out * R) with a fixed random R, so dL/dout = R.
"""

import numpy as np
import pytest
from gradcheck import assert_grads_close, fixed_dropout

from scratchlm import ModelConfig
from scratchlm.layers import cope as cope_layer
from scratchlm.layers.attention import (
    QUERY_BLOCK,
    attention_backward,
    attention_forward,
    blocked_attention_backward,
    blocked_attention_forward,
)
from scratchlm.layers.cope import (
    COPE,
    SUM_BLOCK,
    cope_attention_backward,
    cope_attention_forward,
    cumsum_last,
)
from scratchlm.layers.cross_entropy import cross_entropy_backward, cross_entropy_forward
from scratchlm.layers.dyt import dyt_backward, dyt_forward
from scratchlm.layers.embedding import embedding_backward, embedding_forward, scatter_add_rows
from scratchlm.layers.linear import (
    linear_backward,
    linear_forward,
    stacked_linear_backward,
    stacked_linear_forward,
)
from scratchlm.layers.swiglu import swiglu_backward, swiglu_forward


def randn(rng, *shape, scale=1.0):
    return rng.standard_normal(shape) * scale


def check_params(forward, backward, x, p, *args):
    """A layer whose parameters come by local name: forward(x, p, *args) -> (out, cache),
    backward(dout, cache) -> (dx, {local name: gradient})."""
    rng = np.random.default_rng(123)
    out, cache = forward(x, p, *args)
    R = rng.standard_normal(out.shape)
    dx, grads = backward(R, cache)
    assert set(grads) == set(p)
    assert_grads_close(
        lambda: np.sum(forward(x, p, *args)[0] * R), {"x": x, **p}, {"x": dx, **grads}
    )


def check_layer(forward, backward, inputs, names):
    """inputs: the forward's arguments; names: one per argument, None for non-differentiable ones."""
    rng = np.random.default_rng(123)
    out, cache = forward(*inputs)
    R = rng.standard_normal(out.shape)
    grads = backward(R, cache)
    arrays = {n: x for n, x in zip(names, inputs, strict=True) if n is not None}
    analytic = {n: g for n, g in zip([n for n in names if n is not None], grads, strict=True)}
    assert_grads_close(lambda: np.sum(forward(*inputs)[0] * R), arrays, analytic)


def test_linear():
    rng = np.random.default_rng(0)
    check_layer(linear_forward, linear_backward, [randn(rng, 2, 3, 5), randn(rng, 5, 4)], "xw")


def test_stacked_linear():
    rng = np.random.default_rng(10)
    x, w = randn(rng, 2, 3, 5), randn(rng, 3, 5, 4)
    y, _ = stacked_linear_forward(x, w)
    assert np.allclose(y, [x @ w_i for w_i in w], rtol=1e-12, atol=1e-12)  # y[i] = x @ w[i]
    check_layer(stacked_linear_forward, stacked_linear_backward, [x, w], "xw")


def test_stacked_weights_side_by_side_give_the_same_products_and_gradients():
    """The other memory layout of the stacked weights (params.fuse(..., side_by_side=True), a
    decoding cache's: one wide product) computes what the checked one does."""
    rng = np.random.default_rng(11)
    x, w, dy = randn(rng, 2, 3, 5), randn(rng, 3, 5, 4), randn(rng, 3, 2, 3, 4)
    side = np.ascontiguousarray(w.transpose(1, 0, 2)).transpose(1, 0, 2)  # (3, 5, 4), a view
    assert np.array_equal(side, w) and not side.flags.c_contiguous
    y, cache = stacked_linear_forward(x, w)
    y_side, cache_side = stacked_linear_forward(x, side)
    assert np.allclose(y_side, y, rtol=1e-12, atol=1e-12)
    grads, grads_side = stacked_linear_backward(dy, cache), stacked_linear_backward(dy, cache_side)
    for g, g_side in zip(grads, grads_side, strict=True):
        assert np.allclose(g_side, g, rtol=1e-12, atol=1e-12)


def test_dyt():
    rng = np.random.default_rng(1)
    p = {"alpha": np.array([0.7]), "gamma": randn(rng, 6), "beta": randn(rng, 6)}
    check_params(dyt_forward, dyt_backward, randn(rng, 2, 3, 6, scale=2.0), p)


@pytest.mark.parametrize("with_pos", [True, False])
def test_embedding(with_pos):
    rng = np.random.default_rng(2)
    ids = np.array([[1, 4, 1], [0, 2, 4]])  # token 1 twice: its gradient rows must add up
    p = {"tok_emb": randn(rng, 5, 4)}
    if with_pos:
        p["pos_emb"] = randn(rng, 6, 4)
    out, cache = embedding_forward(ids, p)
    R = rng.standard_normal(out.shape)
    grads = embedding_backward(R, cache)
    assert set(grads) == set(p)
    assert_grads_close(lambda: np.sum(embedding_forward(ids, p)[0] * R), p, grads)


def test_scatter_add_rows_equals_add_at_on_rows():
    rng = np.random.default_rng(8)
    rows, values = rng.integers(0, 7, (3, 40)), rng.standard_normal((3, 40, 5)).astype(np.float32)
    expected = np.zeros((9, 5), dtype=np.float32)  # rows 7, 8 never hit: they stay 0
    np.add.at(expected, rows.ravel(), values.reshape(-1, 5))
    assert np.array_equal(scatter_add_rows((9, 5), rows, values), expected)  # same sums, same order


def test_swiglu():
    rng = np.random.default_rng(3)
    p = {"w13": randn(rng, 2, 4, 6), "w2": randn(rng, 6, 4)}  # w13 = [w1, w3]
    check_params(swiglu_forward, swiglu_backward, randn(rng, 2, 3, 4), p)


def cope_positions(q, k):
    """The unclamped CoPE positions p_ij, computed independently of the layer's code."""
    s = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
    Tq, Tk = s.shape[-2:]
    g = np.where(np.tri(Tq, Tk, Tk - Tq, dtype=bool), 1 / (1 + np.exp(-s)), 0.0)
    return np.flip(np.cumsum(np.flip(g, -1), -1), -1)[g > 0]  # causal entries only


def positions_off_integers(p, P, margin=2e-4):
    """The gradient check is only valid where no position p_ij crosses an integer (a floor/ceil
    kink) or the clamp at P - 1 under the finite-difference step: test that precondition."""
    free = p[p <= P - 1 + margin]
    return (free < P - 1 - margin).all() and np.abs(free - np.round(free)).min() > margin


def inputs_with_positions_off_integers(make, P, cache_of):
    """Draw inputs from seeds 0, 1, ... until every CoPE position is off an integer point."""
    for seed in range(100):
        inputs = make(np.random.default_rng(seed))
        cache = cache_of(inputs)
        if positions_off_integers(cope_positions(cache.q, cache.k), P):
            return inputs
    raise AssertionError("no seed gave positions away from integers")


@pytest.fixture(params=["one level", "two levels"])
def cumsum_levels(request, monkeypatch):
    """Run the test through each way `cumsum_last` sums: one triangular product (a few short rows)
    and two levels (long rows), whichever the test's sizes would pick."""
    monkeypatch.setattr(cope_layer, "ONE_LEVEL_WORK", 2**62 if request.param == "one level" else 0)


@pytest.mark.parametrize(
    ("Tq", "Tk", "P", "dropout"),
    # self-attention, cached keys, positions clamped at P-1, attention weights dropped
    [(5, 5, 16, 0.0), (3, 7, 16, 0.0), (6, 6, 4, 0.0), (6, 6, 8, 0.4)],
)
def test_cope_attention(Tq, Tk, P, dropout, cumsum_levels):
    B, H, dh = 2, 3, 4

    def make(rng):
        q, k, v = randn(rng, B, H, Tq, dh), randn(rng, B, H, Tk, dh), randn(rng, B, H, Tk, dh)
        return [q, k, v, randn(rng, H, P, dh)]

    def forward(q, k, v, cope):
        return cope_attention_forward(q, k, v, {"cope": cope}, dropout=fixed_dropout(dropout))

    def backward(do, cache):
        dq, dk, dv, grads = cope_attention_backward(do, cache)
        return dq, dk, dv, grads["cope"]

    inputs = inputs_with_positions_off_integers(make, P, lambda x: forward(*x)[1])
    if P == 4:
        assert (cope_positions(*inputs[:2]) > P - 1).any(), "must exercise the clamp"
    if dropout:
        drop, a = forward(*inputs)[1].drop, forward(*inputs)[1].a
        assert (a[drop == 0] > 0).any(), "must drop real attention weights"
    check_layer(forward, backward, inputs, "qkvc")


@pytest.mark.parametrize("n", [1, SUM_BLOCK - 1, SUM_BLOCK, 3 * SUM_BLOCK + 5])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum_last(n, reverse, cumsum_levels):
    x = np.random.default_rng(n).standard_normal((2, 3, n))
    expected = np.flip(np.cumsum(np.flip(x, -1), -1), -1) if reverse else np.cumsum(x, -1)
    assert np.allclose(cumsum_last(x, reverse), expected, rtol=1e-12, atol=1e-12)


def kv_hide(B, Tq, Tk, rng):
    """A hide mask (B, 1, Tq, Tk) as a key/value cache builds it for rows of different lengths:
    row b holds Tk - shift[b] tokens, and query t must not see keys past its own slot."""
    shift = rng.integers(0, Tk - Tq + 1, B)  # (B,)
    slots = Tk - Tq - shift[:, None] + np.arange(Tq)  # (B, Tq)
    return (np.arange(Tk) > slots[:, :, None])[:, None]  # (B, 1, Tq, Tk)


# Several query blocks, the last one partial, and cumulative sums over several partial blocks.
LONG = QUERY_BLOCK + SUM_BLOCK // 2 + 1


@pytest.mark.parametrize(("Tq", "Tk", "hidden"), [(LONG, LONG, False), (LONG, LONG + 9, True)])
def test_blocked_attention_equals_one_block(Tq, Tk, hidden, cumsum_levels):
    """Query blocks against only the keys they can see: the same output and gradients as the
    whole (Tq, Tk) square in one call."""
    rng = np.random.default_rng(9)
    B, H, dh, P = 2, 3, 4, 8
    q, k, v = randn(rng, B, H, Tq, dh), randn(rng, B, H, Tk, dh), randn(rng, B, H, Tk, dh)
    cope, do = randn(rng, H, P, dh), randn(rng, B, H, Tq, dh)
    hide = kv_hide(B, Tq, Tk, rng) if hidden else None
    o, cache = blocked_attention_forward(COPE, q, k, v, {"cope": cope}, hide)
    assert len(cache.blocks) == -(-Tq // QUERY_BLOCK) > 1
    o_one, cache_one = cope_attention_forward(q, k, v, {"cope": cope}, hide)
    assert np.allclose(o, o_one, rtol=1e-12, atol=1e-12)
    *grads, dp = blocked_attention_backward(COPE, do, cache)
    *grads_one, dp_one = cope_attention_backward(do, cache_one)
    for g, g_one in zip([*grads, dp["cope"]], [*grads_one, dp_one["cope"]], strict=True):
        assert np.allclose(g, g_one, rtol=1e-10, atol=1e-12)


def test_blocked_attention_gradients(cumsum_levels):
    B, H, dh, P = 1, 2, 3, 8

    def make(rng):
        q, k, v = (randn(rng, B, H, LONG, dh) for _ in range(3))
        return [q, k, v, randn(rng, H, P, dh)]

    def forward(q, k, v, cope):
        return blocked_attention_forward(COPE, q, k, v, {"cope": cope})

    def backward(do, cache):
        dq, dk, dv, grads = blocked_attention_backward(COPE, do, cache)
        return dq, dk, dv, grads["cope"]

    inputs = inputs_with_positions_off_integers(make, P, lambda x: forward(*x)[1])
    check_layer(forward, backward, inputs, "qkvc")


@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_attention_layer(dropout):
    d, H, P = 8, 2, 8

    def make(rng):
        w_qkv, wo = randn(rng, 3, d, d, scale=0.7), randn(rng, d, d, scale=0.7)
        return [randn(rng, 2, 5, d), w_qkv, wo, randn(rng, H, P, d // H)]

    cfg = ModelConfig(vocab_size=2, d_model=d, n_heads=H, cope_max_pos=P)

    def forward(u, w_qkv, wo, cope):
        p = {"w_qkv": w_qkv, "wo": wo, "cope": cope}
        return attention_forward(u, p, cfg, COPE, dropout=fixed_dropout(dropout))

    def backward(dy, cache):
        du, grads = attention_backward(dy, cache)
        return du, grads["w_qkv"], grads["wo"], grads["cope"]

    inputs = inputs_with_positions_off_integers(make, P, lambda x: forward(*x)[1].core)
    check_layer(forward, backward, inputs, ["u", "w_qkv", "wo", "cope"])


def test_attention_is_causal_and_clamps_positions():
    rng = np.random.default_rng(6)
    q, k, v = (randn(rng, 1, 2, 6, 4) for _ in range(3))
    cope = randn(rng, 2, 3, 4)
    out, cache = cope_attention_forward(q, k, v, {"cope": cope})
    assert np.allclose(np.triu(cache.a[0, 0], 1), 0) and np.allclose(cache.a.sum(-1), 1)
    assert np.allclose(np.triu(cache.gate_slope[0, 0], 1), 0)
    # p_ii = g_ii > 0: every token counts at least itself, so no key is at position 0
    w_diag = np.diagonal(cache.w, axis1=-2, axis2=-1)
    assert (w_diag > 0).all()
    # positions beyond P - 1 = 2 are clamped: they sit exactly at P - 1, with weight 0
    clamped = np.flip(np.cumsum(np.flip(cache.a > 0, -1), -1), -1) >= 6  # surely p > 2 there
    assert clamped.any() and (cache.w[clamped] == 0).all()


@pytest.mark.parametrize("masked", [False, True])
def test_cross_entropy(masked):
    rng = np.random.default_rng(7)
    logits = randn(rng, 2, 4, 6, scale=2.0)
    targets = rng.integers(0, 6, (2, 4))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0]]) if masked else None
    loss, cache = cross_entropy_forward(logits, targets, mask)
    dlogits = cross_entropy_backward(cache)
    assert_grads_close(
        lambda: cross_entropy_forward(logits, targets, mask)[0],
        {"logits": logits},
        {"logits": dlogits},
    )
    if masked:  # padded positions neither count nor get a gradient
        assert np.all(dlogits[mask == 0] == 0)


def test_cross_entropy_value():
    logits = np.log(np.array([[[0.25, 0.25, 0.5], [0.1, 0.6, 0.3]]]))
    loss, _ = cross_entropy_forward(logits, np.array([[2, 1]]), np.array([[1, 0]]))
    assert loss == pytest.approx(-np.log(0.5))
