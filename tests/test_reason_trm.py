"""Float64 gradient checks of the reasoner's network and of whole supervision steps.

A supervision step's analytic gradient treats the states entering its graded calls as constants
(the paper's no-gradient recursions). So it is checked against the central differences of the
loss with those states FROZEN at the values the unperturbed parameters give; and the same test
shows that the differences of the loss with the states NOT frozen are something else, i.e. that
the check would catch a backward pass that ignored the boundary or crossed it.
"""

import numpy as np
import pytest
from gradcheck import assert_grads_close, numerical_grad, rel_error

from scratchlm.reason.config import FROZEN, ReasonConfig, init_params
from scratchlm.reason.net import fuse, net_backward, net_forward, unfuse
from scratchlm.reason.trm import (
    call_kinds,
    embed,
    heads_forward,
    initial_state,
    run_calls,
    step_losses,
    supervision_step,
)

TINY = dict(d_model=4, n_heads=2, n_cells=4, n_registers=1, expansion=1.0, n=2, T=2, n_layers=2)


def tiny(seed=0, **kw):
    cfg = ReasonConfig(**(TINY | kw))
    params = init_params(cfg, seed, dtype="float64")
    rng = np.random.default_rng(seed + 1)
    for p in params.values():  # away from the zero / constant inits: every path carries
        p += rng.standard_normal(p.shape) * 0.3
    puzzles = rng.integers(0, 7, size=(2, cfg.n_cells))
    solutions = rng.integers(1, 7, size=(2, cfg.n_cells))
    return cfg, params, puzzles, solutions


@pytest.mark.parametrize("mixer", ["mlp", "attention"])
def test_network(mixer):
    cfg, params, _, _ = tiny(mixer=mixer)
    h = np.random.default_rng(5).standard_normal((2, cfg.seq_len, cfg.d_model))
    R = np.random.default_rng(6).standard_normal(h.shape)
    layer_names = [n for n in params if n.startswith("layers.")]

    def f():
        return np.sum(net_forward(h, fuse(params, cfg), cfg)[0] * R)

    out, caches = net_forward(h, fuse(params, cfg), cfg)
    dh, fused_grads = net_backward(R, caches, cfg)
    analytic = unfuse(fused_grads, cfg) | {"h": dh}
    assert_grads_close(f, {"h": h} | {n: params[n] for n in layer_names}, analytic)


def _graded_loss(params, puzzles, solutions, y, z, cfg):
    """The loss of a step whose graded calls start from the given (y, z) (no recursion before)."""
    x = embed(puzzles, params, cfg)
    kinds = call_kinds(cfg)[-cfg.grad_calls :]
    y, z, _ = run_calls(x, y, z, fuse(params, cfg), cfg, kinds, 0)
    logits, q = heads_forward(y, params, cfg)
    _, _, (ce, bce, _, _) = step_losses(logits, q, solutions, cfg)
    return ce + cfg.halt_weight * bce


@pytest.mark.parametrize(
    "kw",
    [
        dict(kind="trm"),
        dict(kind="trm", mixer="attention"),
        dict(kind="trm", loss="stablemax"),
        dict(kind="onestep"),
        dict(kind="trm", T=1, n=3),
    ],
    ids=["trm", "attention", "stablemax", "onestep", "T=1"],
)
def test_supervision_step(kw):
    cfg, params, puzzles, solutions = tiny(**kw)
    y0, z0 = initial_state(params, len(puzzles), cfg)
    rng = np.random.default_rng(9)
    y0 += rng.standard_normal(y0.shape)  # a carry from an earlier step, not the initial one
    z0 += rng.standard_normal(z0.shape)
    step = supervision_step(params, puzzles, y0, z0, cfg, solutions, grads=True)
    trained = {n: p for n, p in params.items() if n not in FROZEN}
    assert set(step.grads) == set(trained)

    # The states at the boundary, computed once with the unperturbed parameters, then frozen.
    x = embed(puzzles, params, cfg)
    ungraded = call_kinds(cfg)[: -cfg.grad_calls]
    yb, zb, _ = run_calls(x, y0, z0, fuse(params, cfg), cfg, ungraded, 0)
    frozen = lambda: _graded_loss(params, puzzles, solutions, yb, zb, cfg)  # noqa: E731
    assert frozen() == pytest.approx(step.loss, rel=1e-12)
    assert_grads_close(frozen, trained, step.grads)

    if ungraded:  # the boundary is real: gradients of the whole step's loss differ
        whole = lambda: supervision_step(params, puzzles, y0, z0, cfg, solutions).loss  # noqa: E731
        name = "layers.0.ffn.w2"
        assert rel_error(numerical_grad(whole, params[name]), step.grads[name]) > 1e-3


@pytest.mark.parametrize("n_layers", [2, 3])
def test_direct_network_step(n_layers):
    cfg, params, puzzles, solutions = tiny(kind="direct", n_layers=n_layers)
    assert "halt.w" not in params and "y_init" not in params
    step = supervision_step(params, puzzles, None, None, cfg, solutions, grads=True)
    f = lambda: supervision_step(params, puzzles, None, None, cfg, solutions).loss  # noqa: E731
    assert_grads_close(f, params, step.grads)


@pytest.mark.parametrize("kw", [dict(kind="trm"), dict(kind="trm", mixer="attention")])
def test_a_float32_model_computes_in_float32(kw):
    """No NumPy float64 constant (an np.sqrt of a size) promotes a float32 model: its carried
    states and every gradient stay float32."""
    cfg = ReasonConfig(**(TINY | kw))
    params = init_params(cfg, 0, dtype="float32")
    puzzles = np.random.default_rng(0).integers(0, 7, size=(2, cfg.n_cells))
    y, z = initial_state(params, 2, cfg)
    step = supervision_step(params, puzzles, y, z, cfg, puzzles + 1, grads=True)
    assert (step.y.dtype, step.z.dtype) == (np.float32, np.float32)
    assert {name for name, g in step.grads.items() if g.dtype != np.float32} == set()


def test_carry_and_determinism():
    cfg, params, puzzles, solutions = tiny()
    y, z = initial_state(params, 2, cfg)
    a = supervision_step(params, puzzles, y, z, cfg, solutions, grads=True)
    b = supervision_step(params, puzzles, y, z, cfg, solutions, grads=True)
    assert a.loss == b.loss and all(np.array_equal(a.grads[n], b.grads[n]) for n in a.grads)
    assert not np.allclose(a.y, y) and not np.allclose(a.z, z)  # the carry moves on
    c = supervision_step(params, puzzles, a.y, a.z, cfg, solutions)
    assert c.loss != a.loss  # and the next step starts from it
