"""Token embedding plus (optionally) learned absolute positions: h = tok_emb[ids] + pos_emb[:T]."""

import numpy as np


def embedding_forward(ids, tok_emb, pos_emb=None):
    """ids (B, T) int, tok_emb (V, d), pos_emb (max_seq_len, d) or None -> h (B, T, d)."""
    h = tok_emb[ids]  # (B, T, d)
    if pos_emb is not None:
        h += pos_emb[: ids.shape[1]]
    return h, (ids, tok_emb.shape, pos_emb is not None)


# A row of tok_emb receives the sum of dh over every position that holds that token;
# a row of pos_emb the sum over the batch at that position.
def embedding_backward(dh, cache):
    ids, emb_shape, has_pos = cache
    d = dh.shape[-1]
    dtok = np.zeros(emb_shape, dtype=dh.dtype)  # (V, d)
    np.add.at(dtok, ids.ravel(), dh.reshape(-1, d))
    dpos = dh.sum(axis=0) if has_pos else None  # (T, d): rows T.. of pos_emb get no gradient
    return dtok, dpos
