"""The swappable parts (docs/design.md, "Variants"): every norm, position scheme and feed-forward
network, in both layouts (one shared block, a stack of distinct blocks). Float64 central-difference
checks of each new layer and of the whole model, cached decoding against the full forward pass
(RoPE positions and rows of different lengths included), model files, and the config's refusals."""

import numpy as np
import pytest
from gradcheck import assert_grads_close, fixed_dropout, training_loss
from models import TINY, cope_positions, positions_clear, small_model
from test_layers import check_params, kv_hide, randn

from scratchlm import Model, ModelConfig, load_model
from scratchlm.errors import ConfigError
from scratchlm.generate import KVCacheDecoder
from scratchlm.layers.attention import (
    NO_POSITION,
    QUERY_BLOCK,
    blocked_attention_backward,
    blocked_attention_forward,
    softmax_attention_backward,
    softmax_attention_forward,
)
from scratchlm.layers.gelu import gelu_backward, gelu_forward
from scratchlm.layers.layernorm import layernorm_backward, layernorm_forward
from scratchlm.layers.relu2 import relu2_backward, relu2_forward
from scratchlm.layers.rmsnorm import rmsnorm_backward, rmsnorm_forward
from scratchlm.layers.rope import rope_backward, rope_forward
from scratchlm.look_inside import look_inside
from scratchlm.params import param_shapes
from scratchlm.parts import FFNS, NORMS, POSITIONS

CFG = ModelConfig(vocab_size=2, d_model=6, n_heads=2, max_seq_len=12, norm_eps=1e-5)

# Every value of every field at least once; each of them in both layouts below.
VARIANTS = {
    "rmsnorm-rope-gelu": {"norm": "rmsnorm", "position": "rope", "ffn": "gelu"},
    "layernorm-none-swiglu": {"norm": "layernorm", "position": "none", "ffn": "swiglu"},
    "dyt-cope-gelu": {"norm": "dyt", "position": "cope", "ffn": "gelu"},
    "rmsnorm-rope-relu2": {"norm": "rmsnorm", "position": "rope", "ffn": "relu2"},
}
# TINY's depth 3 for the shared block; a stack of two distinct blocks keeps the checks small.
LAYOUTS = {"shared": {"share_weights": True}, "stack": {"share_weights": False, "depth": 2}}
CASES = [(v, lay) for v in VARIANTS for lay in LAYOUTS]


def variant_config(variant, layout, **more):
    fields = {**TINY, "depth": 3, **VARIANTS[variant], **LAYOUTS[layout], **more}
    return ModelConfig(vocab_size=11, **fields)


def test_the_cases_cover_every_part():
    for field, names in (("norm", NORMS), ("position", POSITIONS), ("ffn", FFNS)):
        assert {v[field] for v in VARIANTS.values()} == set(names)


# ------------------------------------------------------------------------------ the layers


@pytest.mark.parametrize("forward, backward", [(rmsnorm_forward, rmsnorm_backward)])
def test_rmsnorm(forward, backward):
    rng = np.random.default_rng(0)
    check_params(forward, backward, randn(rng, 2, 3, 6, scale=2.0), {"gamma": randn(rng, 6)}, CFG)


def test_rmsnorm_gives_unit_root_mean_square():
    x = np.random.default_rng(1).standard_normal((4, 6)) * 5
    y, _ = rmsnorm_forward(x, {"gamma": np.ones(6)}, CFG)
    np.testing.assert_allclose(np.sqrt((y * y).mean(-1)), 1.0, rtol=1e-5)


def test_layernorm():
    rng = np.random.default_rng(2)
    p = {"gamma": randn(rng, 6), "beta": randn(rng, 6)}
    check_params(layernorm_forward, layernorm_backward, randn(rng, 2, 3, 6, scale=2.0), p, CFG)


def test_layernorm_gives_zero_mean_and_unit_biased_variance():
    x = np.random.default_rng(3).standard_normal((4, 6)) * 5 + 3
    y, _ = layernorm_forward(x, {"gamma": np.ones(6), "beta": np.zeros(6)}, CFG)
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(-1), 1.0, rtol=1e-4)  # np.var is the biased variance


def test_gelu_ffn():
    rng = np.random.default_rng(4)
    p = {"w1": randn(rng, 4, 7), "w2": randn(rng, 7, 4)}
    check_params(gelu_forward, gelu_backward, randn(rng, 2, 3, 4), p)


def test_relu2_ffn():
    rng = np.random.default_rng(10)
    p = {"w1": randn(rng, 4, 7), "w2": randn(rng, 7, 4)}
    check_params(relu2_forward, relu2_backward, randn(rng, 2, 3, 4), p)
    out, _ = relu2_forward(np.array([[-2.0, 0.0, 3.0]]), {"w1": np.eye(3), "w2": np.eye(3)})
    np.testing.assert_array_equal(out, [[0.0, 0.0, 9.0]])


def test_gelu_is_the_tanh_form_of_gpt2():
    a = np.linspace(-4, 4, 9)
    identity = {"w1": np.eye(9), "w2": np.eye(9)}
    out, _ = gelu_forward(a[None], identity)
    expected = 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))
    np.testing.assert_allclose(out[0], expected, rtol=1e-12)


@pytest.mark.parametrize("positions", [None, np.array([[3, 4, 5, 6, 7], [0, 1, 2, 3, 4]])])
def test_rope_gradient(positions):
    rng = np.random.default_rng(5)
    x = randn(rng, 2, 3, 5, 8)
    out, cache = rope_forward(x, positions, CFG)
    R = rng.standard_normal(out.shape)
    dx = rope_backward(R, cache)
    assert_grads_close(lambda: np.sum(rope_forward(x, positions, CFG)[0] * R), {"x": x}, {"x": dx})


def test_rope_formula_and_relative_positions():
    """x' pairs feature i with i + dh/2 and turns them by t theta_i; q'.k' depends on the
    positions only through their difference."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal(8)
    t, theta = 5, 10000.0 ** (-np.arange(4) * 2 / 8)
    c, s = np.cos(t * theta), np.sin(t * theta)
    expected = np.concatenate([x[:4] * c - x[4:] * s, x[:4] * s + x[4:] * c])
    got, _ = rope_forward(x.reshape(1, 1, 1, 8), np.array([[t]]), CFG)
    np.testing.assert_allclose(got.ravel(), expected, rtol=1e-12)
    q, k = (rng.standard_normal((1, 1, 1, 8)) for _ in range(2))

    def score(tq, tk):
        rq, _ = rope_forward(q, np.array([[tq]]), CFG)
        rk, _ = rope_forward(k, np.array([[tk]]), CFG)
        return float(rq.ravel() @ rk.ravel())

    assert score(7, 2) == pytest.approx(score(9, 4), rel=1e-12)
    assert score(7, 2) != pytest.approx(score(7, 3), rel=1e-6)


@pytest.mark.parametrize(
    ("Tq", "Tk", "dropout", "hidden"),
    [(5, 5, 0.0, False), (3, 7, 0.0, True), (6, 6, 0.4, False)],
    ids=["self", "cached-hidden", "dropout"],
)
def test_softmax_attention(Tq, Tk, dropout, hidden):
    rng = np.random.default_rng(7)
    B, H, dh = 2, 3, 4
    q, k, v = randn(rng, B, H, Tq, dh), randn(rng, B, H, Tk, dh), randn(rng, B, H, Tk, dh)
    hide = kv_hide(B, Tq, Tk, rng) if hidden else None

    def forward(q, k, v):
        return softmax_attention_forward(q, k, v, None, hide, fixed_dropout(dropout))

    o, cache = forward(q, k, v)
    assert np.allclose(cache.a.sum(-1), 1.0)
    assert np.all(cache.a[..., np.triu_indices(Tq, Tk - Tq + 1)[0], :] >= 0)
    R = rng.standard_normal(o.shape)
    dq, dk, dv, grads = softmax_attention_backward(R, cache)
    assert grads == {}
    assert_grads_close(
        lambda: np.sum(forward(q, k, v)[0] * R),
        {"q": q, "k": k, "v": v},
        {"q": dq, "k": dk, "v": dv},
    )


def test_softmax_attention_is_causal():
    rng = np.random.default_rng(8)
    q, k, v = (randn(rng, 1, 2, 6, 4) for _ in range(3))
    _, cache = softmax_attention_forward(q, k, v)
    assert np.allclose(np.triu(cache.a[0, 0], 1), 0)


def test_blocked_softmax_attention_equals_one_block():
    rng = np.random.default_rng(9)
    T = QUERY_BLOCK + 9
    q, k, v, do = (randn(rng, 2, 2, T, 4) for _ in range(4))
    o, cache = blocked_attention_forward(NO_POSITION, q, k, v, {})
    assert len(cache.blocks) == 2
    o_one, cache_one = softmax_attention_forward(q, k, v)
    np.testing.assert_allclose(o, o_one, rtol=1e-12, atol=1e-12)
    grads = blocked_attention_backward(NO_POSITION, do, cache)[:3]
    for g, g_one in zip(grads, softmax_attention_backward(do, cache_one)[:3], strict=True):
        np.testing.assert_allclose(g, g_one, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------ the whole model


def gradcheck_model(cfg, dropout=0.0):
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, 11, (2, 7)), rng.integers(0, 11, (2, 7))
    mask = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])

    seeds = range(50) if cfg.position == "cope" else [0]  # CoPE: positions off the kinks
    seed = next(
        s
        for s in seeds
        if cfg.position != "cope"
        or positions_clear(
            cope_positions(small_model(cfg, s, perturbed=True), ids, fixed_dropout(dropout)), 6
        )
    )
    model = small_model(cfg, seed, perturbed=True)
    loss, grads = model.loss_and_grads(ids, targets, mask, dropout=fixed_dropout(dropout))
    assert set(grads) == set(model.params)
    assert loss == training_loss(model, ids, targets, mask, dropout)
    assert_grads_close(
        lambda: training_loss(model, ids, targets, mask, dropout), model.params, grads
    )


@pytest.mark.parametrize(("variant", "layout"), CASES)
def test_whole_model_gradients(variant, layout):
    gradcheck_model(variant_config(variant, layout))


def test_whole_model_gradients_with_dropout_and_adaptive_depth():
    gradcheck_model(variant_config("rmsnorm-rope-gelu", "shared"), dropout=0.3)
    cfg = variant_config("layernorm-none-swiglu", "shared", adaptive_depth=True, max_depth=3)
    gradcheck_model(cfg)


def test_a_stack_names_each_block_and_keeps_the_scales():
    shapes = param_shapes(variant_config("rmsnorm-rope-gelu", "stack", depth=3))
    assert {"blocks.0.norm1.gamma", "blocks.2.attn.wq", "blocks.1.ffn.w2"} <= set(shapes)
    assert not any(name.startswith("block.attn.") for name in shapes)
    assert shapes["block.attn_scale"] == shapes["block.ffn_scale"] == (3,)
    assert "blocks.0.ffn.w3" not in shapes and "blocks.0.norm1.beta" not in shapes  # gelu, rms
    assert "blocks.0.attn.cope" not in shapes


def test_a_stack_of_one_block_is_the_shared_block_once():
    """depth 1: the two layouts are the same function of the same numbers, renamed."""
    shared = small_model(variant_config("dyt-cope-gelu", "shared", depth=1), 0, perturbed=True)
    stack = Model(variant_config("dyt-cope-gelu", "stack", depth=1), dtype="float64")
    for name in stack.params:
        stack.params[name][...] = shared.params[name.replace("blocks.0.", "block.")]
    ids = np.random.default_rng(1).integers(0, 11, (2, 7))
    np.testing.assert_array_equal(stack.logits(ids), shared.logits(ids))


def test_a_shared_block_gets_the_sum_and_a_stack_each_its_own():
    """The per-step gradient norms (gradient analysis) add up as the layouts say."""
    ids = np.random.default_rng(2).integers(0, 11, (2, 7))
    for layout in LAYOUTS:
        model = small_model(variant_config("rmsnorm-rope-gelu", layout, depth=3), 0, perturbed=True)
        norms = model.step_gradient_norms(ids, ids)
        assert len(norms) == 3 and all(n > 0 for n in norms)
        _, grads = model.loss_and_grads(ids, ids)
        prefix = "block.attn." if layout == "shared" else "blocks.1.attn."
        assert grads[f"{prefix}wq"].any()


@pytest.mark.parametrize(("variant", "layout"), CASES)
def test_cached_decoding_equals_the_full_forward_pass(variant, layout):
    """Rows of different lengths in one batch, past the sliding of the 8-token window (positions
    restart at 0 in the kept window, as in training): every next-token distribution is the full
    forward pass's over what the row sees."""
    model = small_model(variant_config(variant, layout), 3, perturbed=True)
    decoder = KVCacheDecoder(model)
    rng = np.random.default_rng(3)
    logits = decoder.start([rng.integers(3, 11, n).tolist() for n in (2, 6, 3)])
    for _ in range(10):
        for row, context in zip(logits, decoder.contexts, strict=True):
            full = model.logits(np.array([context]))[0, -1]
            np.testing.assert_allclose(row, full, rtol=0, atol=1e-10)
        logits = decoder.advance(logits.argmax(axis=-1))


@pytest.mark.parametrize(("variant", "layout"), CASES)
def test_a_float32_model_computes_in_float32(variant, layout):
    """No float64 constant promotes a float32 model's arithmetic (NumPy 2 keeps a NumPy float64
    scalar's precision): that silently made a GELU model train at a third of its speed."""
    model = small_model(variant_config(variant, layout), 5, dtype="float32")
    ids = np.random.default_rng(5).integers(0, 11, (2, 7))
    loss, grads = model.loss_and_grads(ids, np.roll(ids, -1, axis=1))
    assert model.logits(ids).dtype == np.float32
    assert {name for name, g in grads.items() if g.dtype != np.float32} == set()


def test_rope_positions_make_a_difference():
    """Without learned positions, RoPE alone tells the order: a model that sees a shuffled
    prefix predicts differently (the `none` scheme cannot tell, up to causality)."""
    ids = np.array([[3, 4, 5, 6]])
    shuffled = np.array([[5, 3, 4, 6]])
    outs = {}
    for position in ("rope", "none"):
        cfg = ModelConfig(vocab_size=11, **TINY, position=position, learned_pos=False, depth=1)
        model = small_model(cfg, 0, perturbed=True)
        outs[position] = (model.logits(ids)[0, -1], model.logits(shuffled)[0, -1])
    assert not np.allclose(*outs["rope"])
    np.testing.assert_allclose(*outs["none"], atol=1e-12)  # the same set of earlier tokens


@pytest.mark.parametrize(("variant", "layout"), CASES)
@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
def test_model_files_round_trip(tmp_path, variant, layout, suffix):
    model = small_model(variant_config(variant, layout), 4, perturbed=True)
    digest = model.save(tmp_path / f"m{suffix}")
    loaded = load_model(tmp_path / f"m{suffix}", dtype="float64")
    assert loaded.config == model.config
    ids = np.random.default_rng(4).integers(0, 11, (2, 7))
    np.testing.assert_allclose(loaded.logits(ids), model.logits(ids), rtol=1e-5, atol=1e-5)
    assert loaded.save(tmp_path / f"again{suffix}") == digest


def test_look_inside_shows_what_the_variant_has():
    ids = [3, 4, 5, 6, 7]
    rope = look_inside(
        small_model(variant_config("rmsnorm-rope-gelu", "stack"), 0, perturbed=True), ids, 1
    )
    assert rope["positions"] is None and rope["attention"].shape == (5, 5)
    np.testing.assert_allclose(rope["attention"].sum(-1), 1.0)
    cope = look_inside(
        small_model(variant_config("dyt-cope-gelu", "shared"), 0, perturbed=True), ids, 1
    )
    assert cope["positions"].shape == (5, 5)


# ------------------------------------------------------------------------------ the config


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"norm": "batchnorm"}, "'norm' must be one of 'dyt', 'rmsnorm', 'layernorm'"),
        ({"position": "alibi"}, "'position' must be one of"),
        ({"ffn": 3}, "'ffn' must be one of"),
        ({"share_weights": "no"}, "'share_weights' must be true or false"),
        ({"norm_eps": 0.0}, "'norm_eps' must be a number > 0"),
        ({"position": "rope", "d_model": 6, "n_heads": 2}, r"d_head \(3\) must be even"),
        ({"share_weights": False, "adaptive_depth": True}, "needs the shared block"),
    ],
)
def test_bad_variants_are_refused(fields, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(vocab_size=11, **fields)


def test_a_config_without_the_new_fields_is_the_model_of_section_2():
    old = {"vocab_size": 11, **TINY}  # what model files written before the variants hold
    cfg = ModelConfig.from_dict(old)
    assert (cfg.norm, cfg.position, cfg.ffn, cfg.share_weights) == ("dyt", "cope", "swiglu", True)


# ------------------------------------------------------------------------------ every surface


def test_a_variant_trains_chats_evaluates_and_serves_through_the_command_line(tmp_path, capsys):
    """A stack of RMSNorm blocks with RoPE and GELU, trained with Muon by `scratchlm train`, works
    with generate, eval, info, the chat session and a real server, whose look-inside has no CoPE
    positions to show."""
    import json

    import httpx
    from serving import serving

    from scratchlm.chat import ChatSession
    from scratchlm.cli import main

    chat = ["User: What colour is the sky? Assistant: The sky is blue . </s>"] * 4
    (tmp_path / "c.json").write_text(json.dumps(chat))
    (tmp_path / "v.toml").write_text(
        "[model]\nd_model = 16\nn_heads = 2\nd_ff = 24\ndepth = 2\nmax_seq_len = 24\n"
        'norm = "rmsnorm"\nposition = "rope"\nffn = "gelu"\nshare_weights = false\n'
        '[train]\noptimizer = "muon"\nepochs = 3\nbatch_size = 2\n'
    )
    out = tmp_path / "v.safetensors"
    argv = ["train", "--chat", str(tmp_path / "c.json"), "--config", str(tmp_path / "v.toml")]
    assert main([*argv, "--output", str(out)]) == 0
    assert main(["generate", str(out), "User: What colour is the sky? Assistant:", "--json"]) == 0
    assert main(["eval", str(out), str(tmp_path / "c.json")]) == 0
    assert main(["info", str(out)]) == 0
    said = capsys.readouterr().out
    assert '"completion"' in said and "exact_answers=" in said and "blocks.1.attn.wq" not in said
    model = load_model(out)
    assert model.config.position == "rope" and "blocks.1.ffn.w1" in model.params
    assert "".join(ChatSession(model, history=False).reply("What colour is the sky?"))
    with serving(out) as server:
        body = {"model": "v", "messages": [{"role": "user", "content": "What colour is the sky?"}]}
        reply = httpx.post(server.url + "v1/chat/completions", json=body, timeout=60).json()
        assert reply["choices"][0]["message"]["content"]
        inside = httpx.post(server.url + "v1/inspect", json=body, timeout=60).json()
        assert inside["position"] == "rope" and inside["positions"] is None
        assert len(inside["attention"]) == len(inside["tokens"])
