"""Adaptive depth (act.py and its wiring in Model): float64 gradient checks with tokens halting at
different steps, the two extremes of the halting bias, frozen states, the early exit, the ponder
cost and its mask, the vectorised halting rule against a token-by-token reference, and cached
generation against the full forward pass."""

import numpy as np
import pytest
from gradcheck import assert_grads_close, fixed_dropout, training_loss
from models import TINY, cope_positions, positions_clear, small_model

import scratchlm.act
from scratchlm import Model, ModelConfig
from scratchlm.block import block_step_forward
from scratchlm.generate import KVCacheDecoder, generate_batch, make_decoder
from scratchlm.layers.embedding import embedding_forward
from scratchlm.params import weights
from scratchlm.sampling import Sampling

ACT = ModelConfig(vocab_size=11, **TINY, adaptive_depth=True, max_depth=4, ponder_weight=0.5)
MASK = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])


def act_model(cfg, seed, bias):
    """A perturbed float64 model whose halting unit reads the state (random w) with bias `bias`."""
    model = small_model(cfg, seed, perturbed=True)
    model.params["block.halt.w"][...] = np.random.default_rng(100 + seed).standard_normal(
        cfg.d_model
    )
    model.params["block.halt.w"] *= 0.5
    model.params["block.halt.b"][...] = bias
    return model


def act_cache(model, ids, dropout=None):
    return model.forward(ids, dropout=dropout)[1].blocks


def no_dropout():
    return None


def halting_gap(model, ids, new_dropout=no_dropout):
    """The smallest |c_t + p_t - (1 - halt_eps)| over the running tokens of every step where the
    rule decides (all but the last): how far every halting decision is from flipping.
    new_dropout() gives the forward pass its `Dropout` (or None)."""
    cfg, cache = model.config, act_cache(model, ids, new_dropout())
    c, gaps = np.zeros(ids.shape), []
    for step in cache.steps[: cfg.max_depth - 1]:
        gaps.append(np.abs(c + step.prob - (1.0 - cfg.halt_eps))[step.running])
        c += np.where(step.running & ~step.halts, step.prob, 0.0)
    return np.concatenate(gaps).min()


def mixed_depths_model(ids, cfg=ACT, margin=1e-3, new_dropout=no_dropout):
    """A model where tokens halt at >= 3 different steps, no halting decision is within `margin` of
    its threshold and no CoPE position is near an integer or the clamp: finite differences of
    1e-5 then change no discrete choice, so the analytic gradient must match them. With
    `new_dropout`, all of this holds under the masks it draws."""
    for seed in range(50):
        model = act_model(cfg, seed, bias=-0.5)
        if (
            len(np.unique(act_cache(model, ids, new_dropout()).N)) >= 3
            and halting_gap(model, ids, new_dropout) > margin
            and positions_clear(cope_positions(model, ids, new_dropout()), cfg.cope_max_pos)
        ):
            return model
    raise AssertionError("no seed meets the gradient-check preconditions")


IDS = np.random.default_rng(0).integers(0, 11, (2, 7))


@pytest.mark.parametrize(
    ("learned_pos", "dropout"),
    [(True, 0.0), (False, 0.0), (True, 0.3)],
    ids=["pos", "no-pos", "pos-dropout"],
)
def test_whole_model_gradients(learned_pos, dropout):
    """With dropout, under fixed masks (gradcheck.fixed_dropout)."""
    cfg = ModelConfig(**{**ACT.to_dict(), "learned_pos": learned_pos})
    targets = np.random.default_rng(1).integers(0, 11, (2, 7))
    model = mixed_depths_model(IDS, cfg, new_dropout=lambda: fixed_dropout(dropout))

    loss, grads = model.loss_and_grads(IDS, targets, MASK, dropout=fixed_dropout(dropout))
    assert set(grads) == set(model.params)
    assert {"block.halt.w", "block.halt.b"} <= set(grads)
    assert (loss == model.loss(IDS, targets, MASK)) == (not dropout)  # the masks matter
    assert loss == training_loss(model, IDS, targets, MASK, dropout)
    assert_grads_close(
        lambda: training_loss(model, IDS, targets, MASK, dropout), model.params, grads
    )


def test_ponder_gradient_alone():
    """Only the ponder term (the cross-entropy's own gradient zeroed): R's gradient alone reaches the
    halting unit and, through the p's, the states and the block."""
    model = mixed_depths_model(IDS)
    w = model.config.ponder_weight

    def ponder():
        cache = act_cache(model, IDS)
        return w * scratchlm.act.ponder_cost(cache.N, cache.R, MASK)[0]

    logits, cache = model.forward(IDS)
    _, dR = scratchlm.act.ponder_cost(cache.blocks.N, cache.blocks.R, MASK)
    grads = model.backward(np.zeros_like(logits), cache, w * dR)
    names = ("block.halt.w", "block.halt.b", "block.attn.wq", "tok_emb")
    assert_grads_close(ponder, {n: model.params[n] for n in names}, grads)


def reference_halting(model, ids):
    """The halting rule token by token (plain Python), over the same block steps -> out, N, R."""
    cfg, p = model.config, model.params
    w = weights(p, cfg)
    h = p["tok_emb"][ids] + p["pos_emb"][: ids.shape[1]]
    out, N, R = np.zeros_like(h), np.zeros(ids.shape, int), np.zeros(ids.shape)
    c, halted = np.zeros(ids.shape), np.zeros(ids.shape, bool)
    for s in range(cfg.max_depth):
        h_new, _ = block_step_forward(h, w, s, cfg)
        for b, t in np.ndindex(*ids.shape):
            if halted[b, t]:
                continue
            prob = 1.0 / (1.0 + np.exp(-(h_new[b, t] @ p["block.halt.w"] + p["block.halt.b"][0])))
            if c[b, t] + prob >= 1.0 - cfg.halt_eps or s == cfg.max_depth - 1:
                halted[b, t], N[b, t], R[b, t] = True, s + 1, 1.0 - c[b, t]
                out[b, t] += R[b, t] * h_new[b, t]
            else:
                c[b, t] += prob
                out[b, t] += prob * h_new[b, t]
            h[b, t] = h_new[b, t]
    return out, N, R


def test_vectorised_halting_equals_token_by_token_reference():
    model = mixed_depths_model(IDS)
    h, _ = embedding_forward(IDS, model.params)
    out, cache = scratchlm.act.act_forward(h, weights(model.params, model.config), model.config)
    N, R = cache.N, cache.R
    ref_out, ref_N, ref_R = reference_halting(model, IDS)
    np.testing.assert_array_equal(N, ref_N)
    np.testing.assert_allclose(R, ref_R, atol=1e-12)
    np.testing.assert_allclose(out, ref_out, atol=1e-12)


def test_causal_although_the_loop_length_depends_on_every_token():
    model = mixed_depths_model(IDS)
    before = model.logits(IDS)
    for t in range(6):
        changed = IDS.copy()
        changed[:, t + 1] = (changed[:, t + 1] + 5) % 11
        after = model.logits(changed)
        np.testing.assert_allclose(after[:, : t + 1], before[:, : t + 1], rtol=0, atol=1e-12)
        assert not np.allclose(after[:, t + 1], before[:, t + 1])


def copy_into(fixed, adaptive, depth):
    """Give `fixed` (a fixed-depth model) the adaptive model's weights, its first `depth` scales."""
    for name, value in fixed.params.items():
        value[...] = (
            adaptive.params[name][: value.shape[0]] if "scale" in name else adaptive.params[name]
        )


def test_very_negative_bias_is_fixed_depth_max_depth():
    model = act_model(ACT, 1, bias=-80.0)
    fixed = Model(
        ModelConfig(**{**ACT.to_dict(), "adaptive_depth": False, "depth": 4}), dtype="float64"
    )
    copy_into(fixed, model, 4)
    cache = act_cache(model, IDS)
    assert (cache.N == 4).all() and np.allclose(cache.R, 1.0)
    np.testing.assert_allclose(model.logits(IDS), fixed.logits(IDS), rtol=0, atol=1e-12)


def count_block_calls(monkeypatch):
    calls = []

    def counted(h, w, s, cfg, positions=None, kv=None, dropout=None):
        calls.append(h.copy())  # the state entering step s
        return block_step_forward(h, w, s, cfg, positions, kv, dropout)

    monkeypatch.setattr(scratchlm.act, "block_step_forward", counted)
    return calls


def test_very_positive_bias_stops_every_token_after_one_step(monkeypatch):
    model = act_model(ACT, 2, bias=80.0)
    fixed = Model(
        ModelConfig(**{**ACT.to_dict(), "adaptive_depth": False, "depth": 1}), dtype="float64"
    )
    copy_into(fixed, model, 1)
    calls = count_block_calls(monkeypatch)
    logits = model.logits(IDS)
    assert len(calls) == 1  # the early exit: nothing halted is run again
    assert (act_cache(model, IDS).N == 1).all()
    np.testing.assert_allclose(logits, fixed.logits(IDS), rtol=0, atol=1e-12)


def test_loop_ends_once_every_token_has_halted(monkeypatch):
    cfg = ModelConfig(**{**ACT.to_dict(), "max_depth": 8})
    model = act_model(cfg, 2, bias=0.0)
    calls = count_block_calls(monkeypatch)
    N = act_cache(model, IDS).N
    assert N.min() < N.max() < cfg.max_depth
    assert len(calls) == N.max()


def test_halted_states_stay_frozen(monkeypatch):
    model = mixed_depths_model(IDS)
    calls = count_block_calls(monkeypatch)
    cache = act_cache(model, IDS)
    assert cache.N.min() < len(calls)  # some token halts while others go on
    for (b, t), n in np.ndenumerate(cache.N):
        last = cache.steps[n - 1].h_new[b, t]  # its state after its halting step
        for later in calls[n:]:
            np.testing.assert_array_equal(later[b, t], last)


def test_mixture_weights_sum_to_one():
    cache = act_cache(mixed_depths_model(IDS), IDS)
    total = sum(step.weight for step in cache.steps)
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    assert ((cache.R > 0) & (cache.R <= 1)).all()


def test_ponder_term_matches_its_formula():
    model = mixed_depths_model(IDS)
    targets = np.random.default_rng(2).integers(0, 11, (2, 7))
    loss, stats = model.loss(IDS, targets, MASK, return_stats=True)
    N, R = act_cache(model, IDS).N, act_cache(model, IDS).R
    by_hand = sum(N[b, t] + R[b, t] for b, t in zip(*np.nonzero(MASK), strict=True)) / MASK.sum()
    assert stats["ponder"] == pytest.approx(by_hand, rel=1e-12)
    assert loss == pytest.approx(stats["ce"] + 0.5 * by_hand, rel=1e-12)
    counted = N[MASK == 1]
    assert (stats["depth"].min, stats["depth"].max) == (counted.min(), counted.max())
    assert stats["depth"].mean == pytest.approx(counted.mean())
    loss2, _, stats2 = model.loss_and_grads(IDS, targets, MASK, return_stats=True)
    assert (loss2, stats2) == (loss, stats)


def test_loss_mask_selects_the_ponder_positions():
    model = mixed_depths_model(IDS)
    cache = act_cache(model, IDS)
    depth = cache.N
    b, t = np.argwhere(depth < depth.max())[0]  # a position whose ponder differs from others
    mask = np.zeros((2, 7))
    mask[b, t] = 1
    _, stats = model.loss(IDS, IDS, mask, return_stats=True)
    assert stats["ponder"] == pytest.approx(cache.N[b, t] + cache.R[b, t], rel=1e-12)
    _, everywhere = model.loss(IDS, IDS, None, return_stats=True)
    assert everywhere["ponder"] == pytest.approx(np.mean(cache.N + cache.R), rel=1e-12)


def test_fixed_depth_stats_and_float32():
    fixed = Model(ModelConfig(vocab_size=11, **TINY, depth=3))
    _, _, stats = fixed.loss_and_grads(IDS, IDS, return_stats=True)
    assert stats["ponder"] == 0.0 and stats["depth"].min == stats["depth"].max == 3
    model = Model(ACT, dtype="float32")
    loss, grads = model.loss_and_grads(IDS, IDS, MASK)
    assert np.isfinite(loss)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.logits(IDS).dtype == np.float32


def test_cached_generation_equals_full_forward():
    """Every next-token distribution of the key/value-cached decoder, over rows of different
    lengths and past the sliding of the 8-token window, equals the full forward pass."""
    model = act_model(ACT, 3, bias=-0.5)
    decoder = KVCacheDecoder(model)
    rng = np.random.default_rng(3)
    logits = decoder.start([rng.integers(3, 11, n).tolist() for n in (2, 5, 3)])
    depths = []
    for _ in range(12):
        for row, context in zip(logits, decoder.contexts, strict=True):
            logits_full, cache = model.forward(np.array([context]))
            np.testing.assert_allclose(row, logits_full[0, -1], rtol=0, atol=1e-12)
            depths.append(cache.blocks.N[0, -1])
        logits = decoder.advance(logits.argmax(axis=-1))
    assert len(set(depths)) >= 3  # new tokens halted at different steps


def test_cached_steps_skipped_by_the_prompt_get_the_frozen_keys():
    """A prompt whose tokens all halt early stops its loop; a later token that runs deeper attends
    at those skipped steps to keys from the prompt's frozen states, as the full forward pass does."""
    model = act_model(ACT, 3, bias=-0.5)
    rng = np.random.default_rng(0)
    for _ in range(200):
        prompt, token = rng.integers(3, 11, 3).tolist(), int(rng.integers(3, 11))
        N = act_cache(model, np.array([prompt + [token]])).N[0]
        if N[:3].max() < N[3]:
            break
    else:
        raise AssertionError("no prompt halts before the token that follows it")
    decoder = KVCacheDecoder(model)
    decoder.start([prompt])
    np.testing.assert_allclose(
        decoder.advance([token])[0], model.logits(np.array([prompt + [token]]))[0, -1], atol=1e-12
    )


def test_generate_uses_the_cache_with_adaptive_depth():
    model = act_model(ACT, 3, bias=-0.5)
    prompts = [[3, 4], [5, 6, 7, 8]]
    assert isinstance(make_decoder(model), KVCacheDecoder)
    cached = generate_batch(model, prompts, Sampling(max_new_tokens=10))
    assert cached == generate_batch(model, prompts, Sampling(max_new_tokens=10), use_cache=False)
