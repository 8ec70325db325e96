"""look_inside.py: the attention weights and CoPE positions it reads from the forward pass's caches
equal a plain loop over queries and keys written from the formulas of docs/design.md section 2, and
its depths agree with what adaptive depth must give."""

import numpy as np
import pytest
from models import loud_model

from scratchlm.block import block_step_forward
from scratchlm.errors import InputError
from scratchlm.look_inside import look_inside
from scratchlm.params import weights

V = 19


def make_model(adaptive=False):
    return loud_model(
        2,
        ("cope", "pos_emb", "halt.w"),
        vocab_size=V,
        d_model=12,
        n_heads=3,
        d_ff=16,
        depth=3,
        max_seq_len=40,  # room for more than one block of queries (QUERY_BLOCK = 32)
        cope_max_pos=4,  # small: some positions reach the clamp at P - 1
        adaptive_depth=adaptive,
        max_depth=4,
    )


def attention_by_loops(model, ids, step, head):
    """The attention weights a and positions p (T, T) of one head at one recursion step, one query
    and one key at a time: s_ij = q_i.k_j / sqrt(dh), g = sigmoid(s), p_ij = min(sum_{t=j..i}
    g_it, P-1), e_ij = z_i[floor p] + (p - floor p)(z_i[ceil p] - z_i[floor p]), a = softmax(s + e)."""
    w, cfg = model.params, model.config
    T, dh, P = len(ids), cfg.d_head, cfg.cope_max_pos
    h = w["tok_emb"][ids] + w["pos_emb"][:T]
    h = h[None]
    for s in range(step):  # the state entering `step` (the plain path)
        h, _ = block_step_forward(h, weights(w, cfg), s, cfg)
    u = w["block.norm1.gamma"] * np.tanh(w["block.norm1.alpha"] * h[0]) + w["block.norm1.beta"]
    cols = slice(head * dh, (head + 1) * dh)
    q, k = (u @ w["block.attn.wq"])[:, cols], (u @ w["block.attn.wk"])[:, cols]
    cope = w["block.attn.cope"][head]  # (P, dh)
    a, p = np.zeros((T, T)), np.zeros((T, T))
    for i in range(T):
        s = np.array([q[i] @ k[j] / np.sqrt(dh) for j in range(i + 1)])
        g = 1 / (1 + np.exp(-s))
        z = [q[i] @ cope[m] for m in range(P)]
        logits = []
        for j in range(i + 1):
            p[i, j] = min(g[j : i + 1].sum(), P - 1)
            lo = int(np.floor(p[i, j]))
            hi = min(lo + 1, P - 1)
            logits.append(s[j] + z[lo] + (p[i, j] - lo) * (z[hi] - z[lo]))
        e = np.exp(np.array(logits) - max(logits))
        a[i, : i + 1] = e / e.sum()
    return a, p


@pytest.mark.parametrize(
    "step, head, n", [(0, 0, 9), (1, 2, 9), (2, 1, 9), (1, 1, 37)], ids=str
)  # 37 tokens: the attention ran in two blocks of queries
def test_attention_and_positions_equal_the_formulas(step, head, n):
    model = make_model()
    ids = (4 * [4, 9, 1, 17, 17, 2, 8, 11, 5, 3])[:n]
    inside = look_inside(model, ids, step, head)
    a, p = attention_by_loops(model, ids, step, head)
    np.testing.assert_allclose(inside["attention"], a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(inside["positions"], p, rtol=1e-9, atol=1e-12)
    assert (p == 3).any() and (p < 3).any()  # the clamp and the interpolation are both exercised
    assert inside["steps"] == 3 and (inside["depth"] == 3).all() and inside["running"].all()


def test_adaptive_depths_are_causal_and_tell_who_is_still_running():
    model = make_model(adaptive=True)
    ids = [4, 9, 1, 17, 17, 2, 8, 11, 5, 6]
    inside = look_inside(model, ids)
    depth = inside["depth"]
    assert depth.min() >= 1 and depth.max() <= 4 and len(set(depth)) > 1
    assert inside["steps"] == depth.max()  # the loop stops once every token has halted
    for k in (1, 4, 7):  # a token's depth does not depend on the tokens after it
        np.testing.assert_array_equal(look_inside(model, ids[:k])["depth"], depth[:k])
    for step in range(inside["steps"]):
        running = look_inside(model, ids, step)["running"]
        np.testing.assert_array_equal(running, depth > step)


def test_out_of_range_step_and_head_are_named():
    model = make_model()
    with pytest.raises(InputError, match="step must be in 0..2"):
        look_inside(model, [1, 2], step=3)
    with pytest.raises(InputError, match="head must be in 0..2"):
        look_inside(model, [1, 2], head=3)
