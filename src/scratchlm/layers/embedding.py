"""Token embedding plus (optionally) learned absolute positions: h = tok_emb[ids] + pos_emb[pos]."""

import numpy as np


def embedding_forward(ids, tok_emb, pos_emb=None, positions=None):
    """ids (B, T) int, tok_emb (V, d), pos_emb (max_seq_len, d) or None -> h (B, T, d).

    positions (B, T): each token's position; None means 0 .. T-1 in every row (training). Decoding
    with a key/value cache gives the positions of the new tokens after the cached ones.
    """
    h = tok_emb[ids]  # (B, T, d)
    if pos_emb is not None:
        h += pos_emb[: ids.shape[1]] if positions is None else pos_emb[positions]
    return h, (ids, tok_emb.shape, None if pos_emb is None else pos_emb.shape, positions)


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
    """-> dtok_emb (V, d), dpos_emb (max_seq_len, d) or None."""
    ids, tok_shape, pos_shape, positions = cache
    dtok = scatter_add_rows(tok_shape, ids, dh)  # (V, d)
    if pos_shape is None:
        return dtok, None
    if positions is not None:
        return dtok, scatter_add_rows(pos_shape, positions, dh)
    dpos = np.zeros(pos_shape, dtype=dh.dtype)  # (max_seq_len, d): rows never used get 0
    dpos[: ids.shape[1]] = dh.sum(axis=0)
    return dtok, dpos
