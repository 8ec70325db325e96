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


# A row of tok_emb receives the sum of dh over every position that holds that token;
# a row of pos_emb the sum over every token at that position.
def embedding_backward(dh, cache):
    """-> dtok_emb (V, d), dpos_emb (max_seq_len, d) or None."""
    ids, tok_shape, pos_shape, positions = cache
    d = dh.shape[-1]
    dtok = np.zeros(tok_shape, dtype=dh.dtype)  # (V, d)
    np.add.at(dtok, ids.ravel(), dh.reshape(-1, d))
    if pos_shape is None:
        return dtok, None
    dpos = np.zeros(pos_shape, dtype=dh.dtype)  # (max_seq_len, d): rows never used get 0
    if positions is None:
        dpos[: ids.shape[1]] = dh.sum(axis=0)
    else:
        np.add.at(dpos, positions.ravel(), dh.reshape(-1, d))
    return dtok, dpos
