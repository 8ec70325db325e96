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

`conversation_inside(model, messages, step, head)` does it for a chat conversation and gives the
JSON-ready answer of the server's `POST /v1/inspect` (the chat page's "look inside" panel). Not
handled: batches (one sequence at a time), the gates and the scores before the softmax.
"""

import numpy as np

from . import chat_format
from .errors import InputError
from .prompts import fit


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


def conversation_inside(model, messages: list[tuple[str, str]], step: int, head: int) -> dict:
    """(role, content) messages, which may end with the assistant's reply -> `look_inside` of their
    most recent context window (as the decoder sees it), as JSON-ready lists: the tokens as text,
    where the last reply starts, the model's shape and the arrays rounded for display."""
    tok, cfg = model.tokenizer, model.config
    full = tok.encode(chat_format.render(messages))
    ids = fit(full, cfg.max_seq_len, 0)  # the most recent window (prompts.py), as decoding saw it
    reply = messages[-1][0] == "assistant"
    start = len(tok.encode(chat_format.reply_prompt(messages[:-1]))) if reply else len(full)
    inside = look_inside(model, ids, step, head)
    positions = inside["positions"]
    return {
        "tokens": [tok.decode([i], skip_special=False) for i in ids],
        "answer_start": max(0, start - (len(full) - len(ids))),
        "adaptive_depth": cfg.adaptive_depth,
        "heads": cfg.n_heads,
        "position": cfg.position,  # the position scheme: CoPE positions only for "cope"
        "cope_max_pos": cfg.cope_max_pos,
        "step": step,
        "head": head,
        "steps": inside["steps"],
        "depth": inside["depth"].tolist(),
        "running": inside["running"].tolist(),
        "attention": inside["attention"].astype(float).round(4).tolist(),
        "positions": None if positions is None else positions.astype(float).round(3).tolist(),
    }
