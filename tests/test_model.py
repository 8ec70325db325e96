"""The whole model: float64 gradient checks through every recursion step, and properties of the
forward pass (initial loss, causality, padding, batching, float32 vs float64)."""

import numpy as np
import pytest
from gradcheck import assert_grads_close, fixed_dropout, training_loss
from hypothesis import given, settings
from hypothesis import strategies as st
from models import TINY, cope_positions, positions_clear, small_model

from scratchlm import ModelConfig, ScratchLMError
from scratchlm.errors import InputError
from scratchlm.model import Model
from scratchlm.params import param_shapes


@pytest.mark.parametrize(
    ("overrides", "dropout"),
    [
        ({"depth": 2}, 0.0),
        ({"depth": 3}, 0.0),
        ({"depth": 3, "learned_pos": False}, 0.0),
        ({"depth": 2}, 0.3),
        ({"depth": 3, "learned_pos": False}, 0.3),
    ],
    ids=["depth2", "depth3", "depth3-no-pos", "depth2-dropout", "depth3-no-pos-dropout"],
)
def test_whole_model_gradients(overrides, dropout):
    """With dropout, under fixed masks (gradcheck.fixed_dropout): the loss is then a function of
    the parameters alone, and the backward pass must give its exact gradient."""
    cfg = ModelConfig(vocab_size=11, **TINY, **overrides)
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, 11, (2, 7)), rng.integers(0, 11, (2, 7))
    mask = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])

    # Precondition, not a tolerance: no CoPE position sits near an integer point or the clamp.
    seed = next(
        s
        for s in range(50)
        if positions_clear(
            cope_positions(small_model(cfg, s, perturbed=True), ids, fixed_dropout(dropout)), 6
        )
    )
    model = small_model(cfg, seed, perturbed=True)
    loss, grads = model.loss_and_grads(ids, targets, mask, dropout=fixed_dropout(dropout))
    assert set(grads) == set(model.params)
    assert (loss == model.loss(ids, targets, mask)) == (not dropout)  # the masks matter
    assert loss == training_loss(model, ids, targets, mask, dropout)
    assert_grads_close(
        lambda: training_loss(model, ids, targets, mask, dropout), model.params, grads
    )


def test_every_step_scale_gets_its_own_gradient():
    cfg = ModelConfig(vocab_size=11, **TINY, depth=3)
    model = small_model(cfg, 1, perturbed=True)
    ids = np.random.default_rng(1).integers(0, 11, (2, 5))
    _, grads = model.loss_and_grads(ids, ids)
    for name in ("block.attn_scale", "block.ffn_scale"):
        assert grads[name].shape == (3,) and np.all(grads[name] != 0)


def test_params_follow_the_design_table():
    cfg = ModelConfig(vocab_size=30)
    model = Model(cfg)
    assert {k: v.shape for k, v in model.params.items()} == param_shapes(cfg)
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert model.num_parameters == sum(np.prod(s) for s in param_shapes(cfg).values())


def test_seeded_init_is_reproducible():
    cfg = ModelConfig(vocab_size=30, **TINY)
    a, b, c = Model(cfg, seed=3), Model(cfg, seed=3), Model(cfg, seed=4)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["tok_emb"], c.params["tok_emb"])


@pytest.mark.parametrize("vocab", [50, 1000, 5000])
def test_initial_loss_is_uniform_guess(vocab):
    model = Model(ModelConfig(vocab_size=vocab))
    ids = np.random.default_rng(0).integers(0, vocab, (4, 64))
    loss = model.loss(ids[:, :-1], ids[:, 1:])
    assert abs(loss - np.log(vocab)) < 0.3


SIZED = {"vocab_size": 20, "d_model": 16, "n_heads": 4, "d_ff": 24, "max_seq_len": 12}


@settings(max_examples=25, deadline=None)
@given(
    st.integers(2, 12).flatmap(lambda T: st.tuples(st.just(T), st.integers(0, T - 2))),
    st.integers(0, 2**31),
)
def test_causality(T_t, seed):
    T, t = T_t
    model = small_model(SIZED, 5)
    ids = np.random.default_rng(seed).integers(0, 20, (2, T))
    changed = ids.copy()
    changed[:, t + 1] = (changed[:, t + 1] + 7) % 20
    before, after = model.logits(ids), model.logits(changed)
    np.testing.assert_allclose(before[:, : t + 1], after[:, : t + 1], rtol=0, atol=1e-12)
    assert not np.allclose(before[:, t + 1], after[:, t + 1])


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 11), st.integers(0, 2**31))
def test_right_padding_changes_nothing(T, seed):
    model = small_model(SIZED, 5)
    ids = np.random.default_rng(seed).integers(1, 20, (1, T))
    padded = np.concatenate([ids, np.zeros((1, 12 - T), dtype=ids.dtype)], axis=1)
    np.testing.assert_allclose(model.logits(padded)[:, :T], model.logits(ids), atol=1e-12)


def test_batch_equals_rows_one_by_one():
    model = small_model(SIZED, 5)
    ids = np.random.default_rng(2).integers(0, 20, (5, 9))
    batch = model.logits(ids)
    for b in range(5):
        np.testing.assert_allclose(batch[b], model.logits(ids[b : b + 1])[0], atol=1e-12)


def test_float32_matches_float64():
    cfg = ModelConfig(vocab_size=40)
    ids = np.random.default_rng(3).integers(0, 40, (3, 40))
    m32, m64 = Model(cfg, seed=1, dtype="float32"), Model(cfg, seed=1, dtype="float64")
    l32, l64 = m32.logits(ids), m64.logits(ids)
    assert l32.dtype == np.float32 and l64.dtype == np.float64
    np.testing.assert_allclose(l32, l64, atol=1e-4)
    _, g32 = m32.loss_and_grads(ids[:, :-1], ids[:, 1:])
    assert all(g.dtype == np.float32 for g in g32.values())


def test_loss_mask_selects_positions():
    model = small_model(SIZED, 5)
    rng = np.random.default_rng(4)
    ids, targets = rng.integers(0, 20, (2, 6)), rng.integers(0, 20, (2, 6))
    mask = np.zeros((2, 6))
    mask[0, 2] = 1
    only = model.loss(ids[:1, :3], targets[:1, :3], np.array([[0, 0, 1]]))
    assert model.loss(ids, targets, mask) == pytest.approx(only)
    assert model.loss(ids, targets, None) == pytest.approx(
        model.loss(ids, targets, np.ones((2, 6)))
    )


@pytest.mark.parametrize(
    ("ids", "targets", "mask", "message"),
    [
        (np.array([1, 2]), None, None, "2-D"),
        (np.array([[1, 20]]), None, None, r"ids\[0, 1\] = 20"),
        (np.array([[-1, 2]]), None, None, "not a token id"),
        (np.ones((1, 13), dtype=int), None, None, "max_seq_len is 12"),
        (np.array([[0.5, 1.0]]), None, None, "integer"),
        (np.array([[1, 2]]), np.array([[1, 2, 3]]), None, "targets have shape"),
        (np.array([[1, 2]]), np.array([[1, 2]]), np.zeros((1, 2)), "all zero"),
        (np.array([[1, 2]]), np.array([[1, 2]]), np.ones((2, 2)), "mask has shape"),
    ],
)
def test_bad_inputs_are_named(ids, targets, mask, message):
    model = small_model(SIZED, 5)
    with pytest.raises(InputError, match=message) as info:
        if targets is None:
            model.logits(ids)
        else:
            model.loss_and_grads(ids, targets, mask)
    assert isinstance(info.value, ScratchLMError)


def test_bad_dtype():
    with pytest.raises(ScratchLMError, match="float32, float64"):
        Model(ModelConfig(vocab_size=5), dtype="float16")
