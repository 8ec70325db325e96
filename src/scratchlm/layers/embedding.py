"""Token embedding plus (optionally) learned absolute positions: h = tok_emb[ids] + pos_emb[pos]."""

import numpy as np

from .param import Param, normal


def embedding_params(cfg) -> dict[str, Param]:
    # The norms do not rescale their input (DyT), so the residual stream starts at unit scale:
    # N(0, 1) tokens, where tanh(0.5 x) is in its useful range; positions at 0.1, so that tokens
    # dominate. Neither is decayed: each step sees only a few of their rows.
    table = {"tok_emb": Param((cfg.vocab_size, cfg.d_model), normal(1.0), False, "token embedding")}
    if cfg.learned_pos:
        shape = (cfg.max_seq_len, cfg.d_model)
        table["pos_emb"] = Param(shape, normal(0.1), False, "learned absolute positions")
    return table


def embedding_forward(ids, p, positions=None):
    """ids (B, T) int, p: tok_emb (V, d) and, with learned positions, pos_emb (max_seq_len, d)
    -> h (B, T, d).

    positions (B, T): each token's position; None means 0 .. T-1 in every row (training). Decoding
    with a key/value cache gives the positions of the new tokens after the cached ones.
    """
    h = p["tok_emb"][ids]  # (B, T, d)
    pos_emb = p.get("pos_emb")
    if pos_emb is not None:
        h += pos_emb[: ids.shape[1]] if positions is None else pos_emb[positions]
    pos_shape = None if pos_emb is None else pos_emb.shape
    return h, (ids, p["tok_emb"].shape, pos_shape, positions)


def scatter_add_rows(shape, rows, values):
    """out (n, d) of zeros with out[rows[i]] += values[i] for every i (a row may repeat).

    rows (...) int, values (..., d). np.add.at is fast only with 1-D indices, so it gets the flat
    index row * d + column of every element: several times faster than row indices, same sums.
    """
    d = shape[1]
    out = np.zeros(shape, dtype=values.dtype)
    flat = rows.reshape(-1, 1) * d + np.arange(d)  # (N, d)
    np.add.at(out.reshape(-1), flat.reshape(-1), values.reshape(-1))
    return out


# A row of tok_emb receives the sum of dh over every position that holds that token;
# a row of pos_emb the sum over every token at that position.
def embedding_backward(dh, cache):
    """-> {"tok_emb": (V, d)} and, with learned positions, "pos_emb" (max_seq_len, d)."""
    ids, tok_shape, pos_shape, positions = cache
    grads = {"tok_emb": scatter_add_rows(tok_shape, ids, dh)}  # (V, d)
    if pos_shape is None:
        return grads
    if positions is not None:
        grads["pos_emb"] = scatter_add_rows(pos_shape, positions, dh)
        return grads
    dpos = np.zeros(pos_shape, dtype=dh.dtype)  # (max_seq_len, d): rows never used get 0
    dpos[: ids.shape[1]] = dh.sum(axis=0)
    grads["pos_emb"] = dpos
    return grads
