"""The key/value cache's rows: preallocated storage that rows join and leave without the others
being copied or moved, and a cache that grows by doubling when it must (float64)."""

import numpy as np
from models import small_model

from scratchlm.generate import KVCacheDecoder
from scratchlm.kvcache import KVCache

CONFIG = dict(vocab_size=19, d_model=8, n_heads=2, d_ff=12, depth=2, max_seq_len=10, cope_max_pos=4)


def test_rows_join_in_place_and_leave_moving_only_the_rows_that_change_place():
    model = small_model(CONFIG, 0, loud=("cope", "head.w"))
    kv = KVCache(model, 0, capacity=4)
    storage = kv._keys
    first = kv.add_rows(3)  # a view: a forward pass over it fills rows 0..2 in place
    model.forward(np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]]), kv=first)
    assert kv.batch == 3 and kv._keys is storage and (kv.lengths == 3).all()
    before = kv.keys.copy()
    kv.select([0, 2])  # row 1 leaves, row 2 takes its place; row 0 stays where it is
    np.testing.assert_array_equal(kv.keys[:, 0], before[:, 0])
    np.testing.assert_array_equal(kv.keys[:, 1], before[:, 2])
    kv.select([1, 0, 1, 1, 0])  # more rows than the storage: it doubles, contents kept
    assert kv.capacity == 8 and kv._keys is not storage
    for now, was in enumerate([2, 0, 2, 2, 0]):
        np.testing.assert_array_equal(kv.keys[:, now], before[:, was])


def test_a_decoder_whose_rows_join_and_leave_equals_the_full_forward_pass():
    model = small_model(CONFIG, 1, loud=("cope", "head.w", "pos_emb"))
    decoder = KVCacheDecoder(model, capacity=2)
    rng = np.random.default_rng(1)
    logits = decoder.start([[3, 4], [5, 6, 7]])
    for step in range(12):
        if step % 3 == 0:  # a new row joins: prefilled after the others, the storage may grow
            logits = np.concatenate([logits, decoder.add([rng.integers(3, 19, 4).tolist()])])
        if step % 4 == 3:  # the first row leaves, the last one takes its place
            rows = [len(decoder.contexts) - 1, *range(1, len(decoder.contexts) - 1)]
            decoder.select(rows)
            logits = logits[rows]
        logits = decoder.advance(logits.argmax(axis=-1))
        for row, context in zip(logits, decoder.contexts, strict=True):
            full = model.logits(np.array([context]))[0, -1]
            np.testing.assert_allclose(row, full, rtol=1e-9, atol=1e-9)
