"""Dropout: the layer's masks and its float64 gradient check under a fixed mask, and that no
Dropout or a rate of 0 changes nothing (bit for bit). Fixed masks: gradcheck.fixed_dropout."""

import numpy as np
import pytest
from gradcheck import fixed_dropout
from models import TINY, small_model
from test_adaptive_depth import ACT, IDS, MASK
from test_layers import check_layer, randn

from scratchlm import ModelConfig
from scratchlm.errors import ConfigError
from scratchlm.layers.dropout import Dropout, dropout_backward, dropout_forward

# ------------------------------------------------------------------------------------- the layer


def test_masks_drop_at_the_rate_and_keep_the_mean():
    x = np.ones((200, 500))
    y, mask = dropout_forward(x, fixed_dropout(0.25))
    assert mask.dtype == x.dtype and y.shape == x.shape
    assert abs((y == 0).mean() - 0.25) < 0.01
    assert set(np.unique(y)) == {0.0, 1 / 0.75}  # kept elements are scaled by 1 / (1 - rate)
    assert abs(y.mean() - 1.0) < 0.02
    assert dropout_forward(np.ones(3, np.float32), fixed_dropout())[1].dtype == np.float32


def test_same_seed_same_mask_other_seed_other_mask():
    x = np.ones((4, 50))
    assert np.array_equal(
        dropout_forward(x, fixed_dropout())[0], dropout_forward(x, fixed_dropout())[0]
    )
    assert not np.array_equal(
        dropout_forward(x, fixed_dropout())[0], dropout_forward(x, fixed_dropout(seed=8))[0]
    )


def test_a_shard_draws_the_masks_its_rows_draw_in_the_whole_batch():
    """Each row has its own generator: cutting a batch into shards (threads, MPI ranks) changes no
    mask, however the rows are shared out, over several draws."""
    whole = Dropout(0.5, seed=(4, 2))
    first, rest = whole.shard(slice(0, 2)), Dropout(0.5, seed=(4, 2)).shard(slice(2, 6))
    for shape in ((6, 3, 5), (6, 7)):
        expected = whole.keep(shape)
        got = np.concatenate([first.keep((2, *shape[1:])), rest.keep((4, *shape[1:]))])
        assert np.array_equal(got, expected)
    assert not np.array_equal(whole.keep((6, 7)), whole.keep((6, 7)))  # each draw is new


@pytest.mark.parametrize("dropout", [None, Dropout(0.0, 0)])
def test_no_dropout_is_the_input_itself(dropout):
    x = np.arange(6.0)
    y, mask = dropout_forward(x, dropout)
    assert y is x and mask is None
    assert dropout_backward(x, mask) is x


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, True])
def test_bad_rates(rate):
    with pytest.raises(ConfigError, match="dropout rate must be in"):
        Dropout(rate, 0)


def test_layer_gradient():
    rng = np.random.default_rng(0)
    backward = lambda dy, mask: (dropout_backward(dy, mask),)  # noqa: E731 (one input, one gradient)
    check_layer(lambda x: dropout_forward(x, fixed_dropout()), backward, [randn(rng, 3, 5)], "x")


# ------------------------------------------------------------------------------ the whole model
# The gradient checks under fixed masks of the attention and the whole model (fixed and adaptive
# depth) are cases of test_layers.py, test_model.py and test_act.py.


@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed-depth", "adaptive-depth"])
def test_rate_zero_is_bit_identical_to_no_dropout(adaptive):
    cfg = ACT if adaptive else ModelConfig(vocab_size=11, **TINY, depth=3)
    model = small_model(cfg, 0, perturbed=True)
    targets = np.random.default_rng(1).integers(0, 11, (2, 7))
    loss, grads = model.loss_and_grads(IDS, targets, MASK)
    zero = Dropout(0.0, 0)
    loss0, grads0 = model.loss_and_grads(IDS, targets, MASK, dropout=zero)
    assert loss0 == loss and loss == model.loss(IDS, targets, MASK)
    for name, g in grads.items():
        assert np.array_equal(grads0[name], g), name
