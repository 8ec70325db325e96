"""Look inside one forward pass: how deep each token went, and where one attention head looked.

`look_inside(model, ids, step, head)` runs the model's ordinary forward pass ONCE over a token
sequence and reads what its caches already hold (nothing is recomputed here):

- depth (T,): how many recursion steps the block ran at each position: `ActCache.N` with adaptive
  depth (act.py), the fixed `depth` otherwise;
- attention (T, T): the weights a_ij of `head` at recursion step `step` (layers/attention.py), row
  i the query, column j the key; 0 for the future keys j > i;
- positions (T, T): the CoPE positions p_ij = floor + w that the same head computed, rebuilt from
  the attention cache (`idx` holds the flat index of z_i[floor p_ij], `w` is p - floor p); None for
  a model whose attention has no CoPE (`position` rope or none: nothing to show);
- running (T,): with adaptive depth, whether the token was still running at that step (a halted
  token's row is computed but not used); all True at fixed depth.

Used by the server's "look inside" panel (serve/app.py). Not handled: batches (one sequence at a
time), the gates and the scores before the softmax.
"""

import numpy as np

from .errors import InputError


def look_inside(model, ids, step: int = 0, head: int = 0) -> dict:
    """ids: one sequence of token ids (T <= max_seq_len) -> {"depth", "steps", "attention",
    "positions", "running"} (NumPy arrays, module docstring); "steps" counts the recursion steps
    that ran, so `step` must be below it."""
    cfg = model.config
    if not 0 <= head < cfg.n_heads:
        raise InputError(f"head must be in 0..{cfg.n_heads - 1}, got {head}")
    rec = model.forward(np.asarray([ids]))[1].blocks  # the block's cache
    T = len(ids)
    if cfg.adaptive_depth:
        blocks, depth = [s.block for s in rec.steps], rec.N[0]
    else:
        blocks, depth = rec, np.full(T, cfg.depth)
    if not 0 <= step < len(blocks):
        raise InputError(f"step must be in 0..{len(blocks) - 1} (the steps that ran), got {step}")
    running = rec.steps[step].running[0] if cfg.adaptive_depth else np.ones(T, dtype=bool)
    # block step cache -> attention cache -> its blocks of queries (a CopeCache with CoPE)
    cope = cfg.position == "cope"
    attention, positions = np.zeros((T, T)), np.zeros((T, T)) if cope else None
    first = 0
    for block in blocks[step].attn.core.blocks:
        last, stop = first + block.q.shape[2], block.k.shape[2]  # queries first..last-1, keys :stop
        attention[first:last, :stop] = block.a[0, head]
        if cope:
            floor = block.idx[0, head] % cfg.cope_max_pos  # idx = floor + P * (flat query index)
            positions[first:last, :stop] = floor + block.w[0, head]
        first = last
    if cope:
        positions[~np.tri(T, dtype=bool)] = 0.0  # only the causal entries are positions
    return {
        "depth": depth,
        "steps": len(blocks),
        "attention": attention,
        "positions": positions,
        "running": running,
    }
