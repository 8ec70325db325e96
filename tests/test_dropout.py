"""Dropout: the layer's masks, float64 gradient checks under fixed masks (the layer, the attention,
the whole model at fixed and adaptive depth), and that no Dropout or a rate of 0 changes nothing.

A fixed mask comes from a `Dropout` whose generator is re-created with the same seed for every
evaluation: the forward pass draws the same masks in the same order each time, so the finite
differences and the backward pass see one and the same function."""

import numpy as np
import pytest
from gradcheck import assert_grads_close
from test_act import ACT, IDS, MASK, act_cache, mixed_depths_model
from test_layers import check_layer, inputs_with_positions_off_integers, randn
from test_model import TINY, cope_positions, perturbed_model, positions_clear

from scratchlm import ModelConfig
from scratchlm.errors import ConfigError
from scratchlm.layers.attention import (
    attention_backward,
    attention_forward,
    cope_attention_backward,
    cope_attention_forward,
)
from scratchlm.layers.dropout import Dropout, dropout_backward, dropout_forward


def fixed(rate=0.3, seed=7):
    """A Dropout that draws the same masks every time it is made: the masks are constants."""
    return Dropout(rate, np.random.default_rng(seed))


# ------------------------------------------------------------------------------------- the layer


def test_masks_drop_at_the_rate_and_keep_the_mean():
    x = np.ones((200, 500))
    y, mask = dropout_forward(x, fixed(0.25))
    assert mask.dtype == x.dtype and y.shape == x.shape
    assert abs((y == 0).mean() - 0.25) < 0.01
    assert set(np.unique(y)) == {0.0, 1 / 0.75}  # kept elements are scaled by 1 / (1 - rate)
    assert abs(y.mean() - 1.0) < 0.02
    assert dropout_forward(np.ones(3, np.float32), fixed())[1].dtype == np.float32


def test_same_seed_same_mask_other_seed_other_mask():
    x = np.ones((4, 50))
    assert np.array_equal(dropout_forward(x, fixed())[0], dropout_forward(x, fixed())[0])
    assert not np.array_equal(dropout_forward(x, fixed())[0], dropout_forward(x, fixed(seed=8))[0])


@pytest.mark.parametrize("dropout", [None, Dropout(0.0, np.random.default_rng(0))])
def test_no_dropout_is_the_input_itself(dropout):
    x = np.arange(6.0)
    y, mask = dropout_forward(x, dropout)
    assert y is x and mask is None
    assert dropout_backward(x, mask) is x


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, True])
def test_bad_rates(rate):
    with pytest.raises(ConfigError, match="dropout rate must be in"):
        Dropout(rate, np.random.default_rng(0))


def test_layer_gradient():
    rng = np.random.default_rng(0)
    backward = lambda dy, mask: (dropout_backward(dy, mask),)  # noqa: E731 (one input, one gradient)
    check_layer(lambda x: dropout_forward(x, fixed()), backward, [randn(rng, 3, 5)], "x")


# ------------------------------------------------------------------------------------ attention


def test_cope_attention_gradient_with_dropped_weights():
    B, H, T, dh, P = 2, 3, 6, 4, 8

    def make(rng):
        return [randn(rng, B, H, T, dh) for _ in range(3)] + [randn(rng, H, P, dh)]

    def forward(q, k, v, cope):
        return cope_attention_forward(q, k, v, cope, dropout=fixed(0.4))

    inputs = inputs_with_positions_off_integers(make, P, lambda x: forward(*x)[1])
    _, cache = forward(*inputs)
    assert (cache.drop == 0).any() and cache.a[cache.drop == 0].max() > 0  # real weights dropped
    check_layer(forward, cope_attention_backward, inputs, "qkvc")


def test_attention_layer_gradient_with_dropout():
    d, H, P = 8, 2, 8

    def make(rng):
        w_qkv, wo = randn(rng, d, 3 * d, scale=0.7), randn(rng, d, d, scale=0.7)
        return [randn(rng, 2, 5, d), w_qkv, wo, randn(rng, H, P, d // H)]

    def forward(u, w_qkv, wo, cope):
        return attention_forward(u, w_qkv, wo, cope, dropout=fixed(0.4))

    inputs = inputs_with_positions_off_integers(make, P, lambda x: forward(*x)[1][1])
    check_layer(forward, attention_backward, inputs, ["u", "w_qkv", "wo", "cope"])


# ----------------------------------------------------------------------------- the whole model


def model_loss_and_grads(model, ids, targets, mask):
    return model.loss_and_grads(ids, targets, mask, dropout=fixed())


@pytest.mark.parametrize("overrides", [{"depth": 2}, {"depth": 3, "learned_pos": False}])
def test_whole_model_gradients_with_fixed_masks(overrides):
    cfg = ModelConfig(vocab_size=11, **TINY, **overrides)
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, 11, (2, 7)), rng.integers(0, 11, (2, 7))
    mask = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    seed = next(
        s
        for s in range(50)
        if positions_clear(cope_positions(perturbed_model(cfg, s), ids, fixed()), 6)
    )
    model = perturbed_model(cfg, seed)
    loss, grads = model_loss_and_grads(model, ids, targets, mask)
    assert loss != model.loss(ids, targets, mask)  # the masks change the function
    assert_grads_close(
        lambda: model_loss_and_grads(model, ids, targets, mask)[0], model.params, grads
    )


def test_adaptive_depth_gradients_with_fixed_masks():
    targets = np.random.default_rng(1).integers(0, 11, (2, 7))
    model = mixed_depths_model(IDS, ACT, new_dropout=fixed)
    assert len(np.unique(act_cache(model, IDS, fixed()).N)) >= 3
    loss, grads = model_loss_and_grads(model, IDS, targets, MASK)
    assert loss != model.loss(IDS, targets, MASK)
    assert_grads_close(
        lambda: model_loss_and_grads(model, IDS, targets, MASK)[0], model.params, grads
    )


@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed-depth", "adaptive-depth"])
def test_rate_zero_is_bit_identical_to_no_dropout(adaptive):
    cfg = ACT if adaptive else ModelConfig(vocab_size=11, **TINY, depth=3)
    model = perturbed_model(cfg, 0)
    targets = np.random.default_rng(1).integers(0, 11, (2, 7))
    loss, grads = model.loss_and_grads(IDS, targets, MASK)
    loss0, grads0 = model.loss_and_grads(IDS, targets, MASK, dropout=fixed(0.0))
    assert loss0 == loss and loss == model.loss(IDS, targets, MASK)
    for name, g in grads.items():
        assert np.array_equal(grads0[name], g), name
