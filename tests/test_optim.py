"""AdamW, the schedule, clipping and accumulation against values worked out by hand."""

import math

import numpy as np
import pytest

from scratchlm.config import ModelConfig
from scratchlm.errors import ConfigError, InputError
from scratchlm.optim import OPTIMIZERS, SGD, AdamW, Lion, Muon, accumulate, clip_grad_norm, lr_at
from scratchlm.optim.muon import newton_schulz
from scratchlm.params import decays, param_shapes


def test_two_adam_steps_on_a_scalar_match_the_hand_computation():
    p = np.array([1.0])
    opt = AdamW({"w": p}, lr=0.1)
    # Step 1, g = 0.5: m = 0.05, v = 0.00025; bias-corrected m_hat = 0.5, v_hat = 0.25,
    # so the step is 0.1 * 0.5 / (0.5 + 1e-8).
    opt.step({"w": np.array([0.5])})
    assert p[0] == pytest.approx(1.0 - 0.1 * 0.5 / (0.5 + 1e-8), abs=1e-15)
    # Step 2, g = -0.2: m = 0.025, v = 0.00028975; dividing by 1 - 0.9**2 = 0.19 and
    # 1 - 0.999**2 = 0.001999 gives m_hat and v_hat.
    opt.step({"w": np.array([-0.2])})
    step2 = 0.1 * (0.025 / 0.19) / (math.sqrt(0.00028975 / 0.001999) + 1e-8)
    assert p[0] == pytest.approx(0.900000002 - step2, abs=1e-12)
    assert p[0] == pytest.approx(0.8654394181165108, abs=1e-12)
    assert opt.t == 2


def test_updates_in_place_and_in_float32():
    rng = np.random.default_rng(0)
    p32 = rng.standard_normal((4, 3)).astype(np.float32)
    p64 = p32.astype(np.float64)
    opt32, opt64 = AdamW({"w": p32}, lr=1e-2), AdamW({"w": p64}, lr=1e-2)
    before = p32
    for _ in range(5):
        g = rng.standard_normal((4, 3))
        opt32.step({"w": g.astype(np.float32)})
        opt64.step({"w": g})
    assert opt32.params["w"] is before and p32.dtype == np.float32
    assert opt32.m["w"].dtype == np.float32 and opt32.v["w"].dtype == np.float32
    np.testing.assert_allclose(p32, p64, rtol=1e-5, atol=1e-6)


def test_lr_argument_overrides_for_one_step_only():
    p = np.array([1.0])
    opt = AdamW({"w": p}, lr=0.1)
    opt.step({"w": np.array([1.0])}, lr=0.0)
    assert p[0] == 1.0 and opt.lr == 0.1


def test_weight_decay_is_decoupled_and_skips_the_no_decay_parameters():
    params = {
        "head.w": np.ones((2, 2)),
        "norm_f.gamma": np.ones(2),
        "tok_emb": np.ones((3, 2)),
        "block.attn_scale": np.ones(3),
    }
    opt = AdamW(params, lr=0.1, weight_decay=0.5)
    # Zero gradients leave m = v = 0, so the Adam part moves nothing and only the decay acts:
    # p <- p * (1 - lr * weight_decay) = 0.95 where decay applies.
    opt.step({name: np.zeros_like(p) for name, p in params.items()})
    np.testing.assert_array_equal(params["head.w"], 0.95)
    for name in ("norm_f.gamma", "tok_emb", "block.attn_scale"):
        np.testing.assert_array_equal(params[name], 1.0)


def test_no_decay_accepts_a_set_of_names():
    params = {"a": np.ones(2), "b": np.ones(2)}
    opt = AdamW(params, lr=0.1, weight_decay=1.0, no_decay={"b"})
    opt.step({"a": np.zeros(2), "b": np.zeros(2)})
    np.testing.assert_array_equal(params["a"], 0.9)
    np.testing.assert_array_equal(params["b"], 1.0)


def test_default_no_decay_covers_exactly_the_non_matrix_parameters():
    cfg = ModelConfig(vocab_size=11, d_model=8, n_heads=2, d_ff=16, adaptive_depth=True)
    decayed = {name for name in param_shapes(cfg) if decays(name)}
    assert decayed == {
        "block.attn.wq",
        "block.attn.wk",
        "block.attn.wv",
        "block.attn.wo",
        "block.ffn.w1",
        "block.ffn.w2",
        "block.ffn.w3",
        "block.halt.w",
        "head.w",
    }


def test_step_rejects_gradients_that_do_not_match_the_parameters():
    opt = AdamW({"w": np.ones(3)}, lr=0.1)
    with pytest.raises(InputError, match="missing"):
        opt.step({})
    with pytest.raises(InputError, match="shape"):
        opt.step({"w": np.ones(4)})


def test_bad_hyperparameters_are_config_errors():
    with pytest.raises(ConfigError):
        AdamW({}, lr=-1.0)
    with pytest.raises(ConfigError):
        AdamW({}, lr=0.1, betas=(0.9, 1.0))


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    start = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in start.items()} for _ in range(4)]
    a_params = {k: v.copy() for k, v in start.items()}
    a = AdamW(a_params, lr=0.05, weight_decay=0.1)
    for g in grads[:3]:
        a.step(g)
    state = a.state_dict()
    b_params = {k: v.copy() for k, v in a_params.items()}
    b = AdamW(b_params, lr=0.05, weight_decay=0.1)
    b.load_state_dict(state)
    a.step(grads[3])
    b.step(grads[3])
    assert b.t == a.t == 4
    for name in start:
        np.testing.assert_array_equal(a_params[name], b_params[name])
    # The state dict is a snapshot: the later step did not change it.
    assert state["t"] == 3 and not np.array_equal(state["m"]["w"], a.m["w"])


def test_load_state_dict_rejects_other_parameters():
    opt = AdamW({"w": np.ones(3)}, lr=0.1)
    with pytest.raises(InputError):
        opt.load_state_dict({"t": 1, "m": {"x": np.ones(3)}, "v": {"x": np.ones(3)}})


def test_schedule_warms_up_then_decays_to_the_floor():
    kw = dict(max_lr=1e-3, min_lr=1e-4, warmup_steps=10, total_steps=110)
    assert lr_at(0, **kw) == 0.0
    assert lr_at(5, **kw) == pytest.approx(5e-4)
    assert lr_at(10, **kw) == pytest.approx(1e-3)
    assert lr_at(60, **kw) == pytest.approx((1e-3 + 1e-4) / 2)  # half-way down the cosine
    assert lr_at(110, **kw) == pytest.approx(1e-4)
    assert lr_at(1000, **kw) == pytest.approx(1e-4)
    warmup = [lr_at(s, **kw) for s in range(11)]
    decay = [lr_at(s, **kw) for s in range(10, 111)]
    assert all(a < b for a, b in zip(warmup, warmup[1:], strict=False))
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))


def test_schedule_without_warmup_starts_at_max():
    assert lr_at(0, max_lr=1.0, min_lr=0.0, warmup_steps=0, total_steps=4) == 1.0


def test_schedule_rejects_inconsistent_settings():
    with pytest.raises(ConfigError):
        lr_at(0, max_lr=1.0, min_lr=0.0, warmup_steps=5, total_steps=4)
    with pytest.raises(ConfigError):
        lr_at(0, max_lr=1.0, min_lr=2.0, warmup_steps=0, total_steps=4)


def _grads():
    return {"a": np.array([3.0, 0.0], dtype=np.float32), "b": np.array([[4.0]], dtype=np.float32)}


def test_clipping_scales_to_max_norm_and_returns_the_norm_before():
    grads = _grads()
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(grads["a"], [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(grads["b"], [[0.8]], rtol=1e-6)
    assert clip_grad_norm(grads, None) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("max_norm", [10.0, 5.0, None, 0])
def test_clipping_leaves_small_gradients_alone(max_norm):
    grads = _grads()
    assert clip_grad_norm(grads, max_norm) == pytest.approx(5.0)
    np.testing.assert_array_equal(grads["a"], [3.0, 0.0])
    np.testing.assert_array_equal(grads["b"], [[4.0]])


def test_clipping_does_not_hide_a_non_finite_norm():
    grads = {"a": np.array([np.inf, 1.0])}
    assert math.isinf(clip_grad_norm(grads, 1.0))
    assert grads["a"][1] == 1.0


def test_accumulate_sums_weighted_gradients():
    total = accumulate(None, {"w": np.array([2.0, 4.0])}, 0.5)
    total = accumulate(total, {"w": np.array([1.0, 1.0])}, 0.25)
    np.testing.assert_allclose(total["w"], [1.25, 2.25])


# ------------------------------------------------------------------------------ the others


def test_sgd_with_momentum_matches_the_hand_computation():
    p = np.array([1.0])
    opt = SGD({"w": p}, lr=0.1, betas=(0.9, 0.999))
    opt.step({"w": np.array([0.5])})  # m = 0.5
    assert p[0] == pytest.approx(1.0 - 0.1 * 0.5, abs=1e-15)
    opt.step({"w": np.array([-0.2])})  # m = 0.9 * 0.5 - 0.2 = 0.25
    assert p[0] == pytest.approx(0.95 - 0.1 * 0.25, abs=1e-15)


def test_lion_moves_every_element_by_lr_in_the_sign_of_the_interpolation():
    p = np.array([1.0, 1.0, 1.0])
    opt = Lion({"w": p}, lr=0.01, betas=(0.9, 0.99))
    opt.step({"w": np.array([0.5, -3.0, 0.0])})  # m = 0: the signs of g
    np.testing.assert_allclose(p, [0.99, 1.01, 1.0], rtol=0, atol=1e-15)
    # m = 0.01 g1 = (0.005, -0.03, 0); u = sign(0.9 m + 0.1 g2) for g2 = (-1, 1, 1)
    opt.step({"w": np.array([-1.0, 1.0, 1.0])})
    np.testing.assert_allclose(p, [1.0, 1.0, 0.99], rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        opt.slots["m"]["w"], [0.99 * 0.005 - 0.01, -0.99 * 0.03 + 0.01, 0.01]
    )


@pytest.mark.parametrize("shape", [(8, 8), (6, 20), (20, 6)])
def test_newton_schulz_gives_the_singular_vectors_with_singular_values_near_one(shape):
    u = np.random.default_rng(0).standard_normal(shape) @ np.diag(np.geomspace(1, 100, shape[1]))
    o = newton_schulz(u)
    s = np.linalg.svd(o, compute_uv=False)
    assert s.min() > 0.6 and s.max() < 1.25  # the quintic's band, not exactly 1
    left, _, right = np.linalg.svd(u, full_matrices=False)
    np.testing.assert_allclose(np.abs(np.sum((left @ right) * o)), s.sum(), rtol=0.05)


def test_muon_orthogonalises_the_block_matrices_and_adams_the_rest():
    rng = np.random.default_rng(1)
    params = {
        "block.attn.wq": rng.standard_normal((6, 6)),
        "blocks.1.ffn.w2": rng.standard_normal((9, 6)),
        "tok_emb": rng.standard_normal((5, 6)),
        "block.attn.cope": rng.standard_normal((2, 3, 3)),
        "block.attn_scale": np.ones(3),
    }
    grads = {name: rng.standard_normal(p.shape) for name, p in params.items()}
    before = {name: p.copy() for name, p in params.items()}
    muon = Muon(params, lr=0.1)
    adam = AdamW({n: before[n].copy() for n in params}, lr=0.1)
    assert set(muon.slots["v"]) == {"tok_emb", "block.attn.cope", "block.attn_scale"}
    muon.step(grads)
    adam.step(grads)
    for name in ("tok_emb", "block.attn.cope", "block.attn_scale"):
        np.testing.assert_array_equal(params[name], adam.params[name])
    for name in ("block.attn.wq", "blocks.1.ffn.w2"):
        g = grads[name]
        expected = before[name] - 0.1 * 0.2 * np.sqrt(max(g.shape)) * newton_schulz(g + 0.9 * g)
        np.testing.assert_allclose(params[name], expected, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_state_round_trips_and_continues_identically(name):
    rng = np.random.default_rng(2)
    params = {"block.attn.wq": rng.standard_normal((4, 4)), "head.w": rng.standard_normal((4, 3))}
    grads = [{n: rng.standard_normal(p.shape) for n, p in params.items()} for _ in range(4)]
    a = OPTIMIZERS[name]({n: p.copy() for n, p in params.items()}, lr=0.01, weight_decay=0.1)
    for g in grads[:2]:
        a.step(g)
    state = a.state_dict()
    assert state["name"] == name and state["t"] == 2
    b = OPTIMIZERS[name]({n: p.copy() for n, p in a.params.items()}, lr=0.01, weight_decay=0.1)
    b.load_state_dict(state)
    for g in grads[2:]:
        a.step(g)
        b.step(g)
    for n in params:
        np.testing.assert_array_equal(a.params[n], b.params[n])


def test_a_state_of_another_optimizer_is_refused():
    params = {"w": np.ones(2)}
    state = SGD(params, lr=0.1).state_dict()
    with pytest.raises(ConfigError, match="the optimizer state is sgd's, not adamw's"):
        AdamW(params, lr=0.1).load_state_dict(state)
    with pytest.raises(InputError, match="optimizer slot 'v' names do not match"):
        AdamW(params, lr=0.1).load_state_dict({**state, "name": "adamw"})
