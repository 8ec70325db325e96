"""The key/value cache of incremental decoding: what `Model.forward(ids, kv=cache)` reads and extends.

The shared block runs once per recursion step, and step s attends over keys and values built from
the hidden states ENTERING step s, so the cache keeps keys and values FOR EACH STEP:

    keys, values   (S, B, H, L, dh)     S steps, B rows, L = max_seq_len slots per row

Row b holds `lengths[b]` tokens in slots 0 .. lengths[b]-1, and a token's slot is its position
(positions restart at 0 in every row, as in training). Rows may hold different numbers of tokens:
new tokens are written at each row's own next slots, and a `hide` mask keeps every query from
seeing the slots past its own position in its row. When all rows hold the same number of tokens
the mask is None and the writes are plain slices.

Rows live in preallocated storage of `capacity` rows, the B rows in use first: rows join
(`add_rows`) and leave (`select`) without copying the others. New rows are filled in place, by a
forward pass over a VIEW of just those rows (a KVCache sharing the storage), and `select` moves
only the rows whose place changes. When the rows outgrow the storage it doubles (one copy of the
rows in use), so a server that sets its capacity once never reallocates.

A cache belongs to the weights it was built with: it keeps the model's `params.weights` (fused
groups side by side: one wide product per fused group for the few new tokens) so that a decoding
step does not copy them again, and its keys are only right for those weights.
Deciding which tokens go in (windows, padding, rows that join and leave) is the decoder's job
(generate.py); a cache only stores.
"""

import numpy as np

from .errors import InputError
from .params import weights as model_weights


class KVCache:
    def __init__(self, model, batch: int, capacity: int = 0, weights=None):
        """`batch` rows in use (empty) in storage for max(batch, capacity) rows; `weights`: the
        model's `params.weights` when the caller has them already (they are built otherwise)."""
        cfg = model.config
        self.config = cfg
        if weights is None:
            weights = model_weights(model.params, cfg, side_by_side=True)
        self.weights = weights
        self.dtype = model.dtype
        self._keys, self._values, self._lengths = self._storage(max(batch, capacity))
        self._rows = batch  # rows in use: the first ones of the storage
        # The forward call under way (set by `extend`): its tokens' slots (B, n), the number of
        # slots its attention reads, whether all rows start at the same slot, and the hide mask.
        self._slots, self._end, self._uniform, self._hide = None, 0, True, None

    def _storage(self, rows: int):
        cfg = self.config
        shape = (cfg.n_steps, rows, cfg.n_heads, cfg.max_seq_len, cfg.d_head)
        return np.zeros(shape, self.dtype), np.zeros(shape, self.dtype), np.zeros(rows, np.intp)

    # The rows in use, as views of the storage (writing into them writes the cache).

    @property
    def keys(self) -> np.ndarray:
        return self._keys[:, : self._rows]  # (S, B, H, L, dh)

    @property
    def values(self) -> np.ndarray:
        return self._values[:, : self._rows]

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths[: self._rows]  # (B,) tokens held by each row

    @lengths.setter
    def lengths(self, value) -> None:
        self._lengths[: self._rows] = value

    @property
    def batch(self) -> int:
        return self._rows

    @property
    def capacity(self) -> int:
        return len(self._lengths)

    # ----------------------------------------------------------------------------- forward calls

    def extend(self, n: int) -> np.ndarray:
        """Reserve the next n slots of every row for a forward call -> their positions (B, n)."""
        start = self.lengths.copy()
        if start.max(initial=0) + n > self.config.max_seq_len:
            raise InputError(
                f"the cache holds {start.max()} tokens; {n} more would pass max_seq_len "
                f"{self.config.max_seq_len}"
            )
        self._slots = start[:, None] + np.arange(n)  # (B, n)
        self._end = int(start.max(initial=0)) + n  # keys 0 .. end-1 take part
        self._uniform = bool((start == start[0]).all()) if len(start) else True
        if self._uniform:
            self._hide = None
        else:
            # Query t of row b sits at slot start[b] + t; in the (Tn, Tk) frame of the attention it
            # is placed at end - n + t, so the slots between are hidden from it explicitly.
            keys = np.arange(self._end)  # (Tk,)
            self._hide = (keys > self._slots[:, :, None])[:, None]  # (B, 1, n, Tk)
        self.lengths = start + n
        return self._slots

    def update(self, step: int, k, v):
        """Write the new tokens' keys and values k, v (B, H, n, dh) into recursion step `step`
        -> every key and value of that step to attend to (B, H, Tk, dh), and the hide mask."""
        self._write(step, k, v)
        end, rows = self._end, self._rows
        return self._keys[step, :rows, :, :end], self._values[step, :rows, :, :end], self._hide

    def _write(self, step: int, k, v):
        keys, values = self._keys[step, : self._rows], self._values[step, : self._rows]
        if self._uniform:
            first = int(self._slots[0, 0])
            keys[:, :, first : first + k.shape[2]] = k
            values[:, :, first : first + k.shape[2]] = v
        else:
            rows = np.arange(self._rows)[:, None]  # (B, 1) with slots (B, n): (B, n, H, dh)
            keys[rows, :, self._slots] = k.transpose(0, 2, 1, 3)
            values[rows, :, self._slots] = v.transpose(0, 2, 1, 3)

    def fill(self, steps: range, k, v):
        """The same keys and values for several steps (adaptive depth: the steps a token skipped)."""
        for step in steps:
            self._write(step, k, v)

    # ----------------------------------------------------------------------------- rows

    def add_rows(self, n: int) -> "KVCache":
        """n new empty rows after the rows in use -> a cache of just those rows, sharing this
        one's storage: a forward pass over it fills them in place."""
        first = self._rows
        self._reserve(first + n)
        self._rows = first + n
        self._lengths[first : first + n] = 0
        view = object.__new__(KVCache)
        view.__dict__.update(self.__dict__)
        view._keys, view._values = self._keys[:, first:], self._values[:, first:]
        view._lengths, view._rows = self._lengths[first:], n
        return view

    def select(self, rows) -> None:
        """Keep (and reorder or repeat) the given rows, e.g. the surviving beams. Only the rows
        whose place changes are copied: keeping rows in place costs nothing."""
        rows = np.asarray(rows, dtype=np.intp)
        self._reserve(len(rows))
        moved = np.flatnonzero(rows != np.arange(len(rows)))  # the places that change
        if len(moved):
            source = rows[moved]  # fancy indexing copies them first: overlaps are safe
            self._keys[:, moved] = self._keys[:, source]
            self._values[:, moved] = self._values[:, source]
            self._lengths[moved] = self._lengths[source]
        self._rows = len(rows)

    def replace(self, rows, other: "KVCache") -> None:
        """Rows `rows` of this cache take the content of `other`'s rows (in order)."""
        self._keys[:, rows], self._values[:, rows] = other.keys, other.values
        self._lengths[rows] = other.lengths

    def scratch(self, batch: int) -> "KVCache":
        """A separate cache of `batch` empty rows from the same weights (not copied again)."""
        return KVCache(self, batch, weights=self.weights)  # a cache has a model's config, dtype

    def _reserve(self, rows: int) -> None:
        """Storage for at least `rows` rows: doubled when too small, the rows in use copied over."""
        if rows <= self.capacity:
            return
        keys, values, lengths = self._storage(max(rows, 2 * self.capacity))
        keys[:, : self._rows], values[:, : self._rows] = self.keys, self.values
        lengths[: self._rows] = self.lengths
        self._keys, self._values, self._lengths = keys, values, lengths
