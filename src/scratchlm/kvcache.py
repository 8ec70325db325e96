"""The key/value cache of incremental decoding: what `Model.forward(ids, kv=cache)` reads and extends.

The shared block runs once per recursion step, and step s attends over keys and values built from
the hidden states ENTERING step s, so the cache keeps keys and values FOR EACH STEP:

    keys, values   (S, B, H, L, dh)     S steps, B rows, L = max_seq_len slots per row

Row b holds `lengths[b]` tokens in slots 0 .. lengths[b]-1, and a token's slot is its position
(positions restart at 0 in every row, as in training). Rows may hold different numbers of tokens:
new tokens are written at each row's own next slots, and a `hide` mask keeps every query from
seeing the slots past its own position in its row. When all rows hold the same number of tokens
the mask is None and the writes are plain slices.

A cache belongs to the weights it was built with: it keeps the model's `params.weights` (fused
groups side by side: one wide product per fused group for the few new tokens) so that a decoding step does
not copy them again, and its keys are only right for those weights.
Deciding which tokens go in (windows, padding, rows that join and leave) is the decoder's job
(generate.py); a cache only stores.
"""

import numpy as np

from .errors import InputError
from .params import weights


class KVCache:
    def __init__(self, model, batch: int):
        cfg = model.config
        self.config = cfg
        self.weights = weights(model.params, cfg, side_by_side=True)
        shape = (cfg.n_steps, batch, cfg.n_heads, cfg.max_seq_len, cfg.d_head)
        self.keys = np.zeros(shape, dtype=model.dtype)
        self.values = np.zeros(shape, dtype=model.dtype)
        self.lengths = np.zeros(batch, dtype=np.intp)  # tokens held by each row
        # The forward call under way (set by `extend`): its tokens' slots (B, n), the number of
        # slots its attention reads, whether all rows start at the same slot, and the hide mask.
        self._slots, self._end, self._uniform, self._hide = None, 0, True, None

    @property
    def batch(self) -> int:
        return len(self.lengths)

    def extend(self, n: int) -> np.ndarray:
        """Reserve the next n slots of every row for a forward call -> their positions (B, n)."""
        if self.lengths.max() + n > self.config.max_seq_len:
            raise InputError(
                f"the cache holds {self.lengths.max()} tokens; {n} more would pass max_seq_len "
                f"{self.config.max_seq_len}"
            )
        start = self.lengths
        self._slots = start[:, None] + np.arange(n)  # (B, n)
        self._end = int(start.max()) + n  # keys 0 .. end-1 take part
        self._uniform = bool((start == start[0]).all())
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
        end = self._end
        return self.keys[step, :, :, :end], self.values[step, :, :, :end], self._hide

    def _write(self, step: int, k, v):
        if self._uniform:
            first = int(self._slots[0, 0])
            self.keys[step, :, :, first : first + k.shape[2]] = k
            self.values[step, :, :, first : first + k.shape[2]] = v
        else:
            rows = np.arange(self.batch)[:, None]  # (B, 1) with slots (B, n): (B, n, H, dh)
            self.keys[step][rows, :, self._slots] = k.transpose(0, 2, 1, 3)
            self.values[step][rows, :, self._slots] = v.transpose(0, 2, 1, 3)

    def fill(self, steps: range, k, v):
        """The same keys and values for several steps (adaptive depth: the steps a token skipped)."""
        for step in steps:
            self._write(step, k, v)

    # ----------------------------------------------------------------------------- rows

    def select(self, rows) -> None:
        """Keep (and reorder or repeat) the given rows, e.g. the surviving beams."""
        rows = np.asarray(rows, dtype=np.intp)
        self.keys, self.values = self.keys[:, rows], self.values[:, rows]
        self.lengths = self.lengths[rows]

    def append(self, other: "KVCache") -> None:
        """Add the rows of `other` (built from the same weights) after this cache's rows."""
        self.keys = np.concatenate([self.keys, other.keys], axis=1)
        self.values = np.concatenate([self.values, other.values], axis=1)
        self.lengths = np.concatenate([self.lengths, other.lengths])

    def replace(self, rows, other: "KVCache") -> None:
        """Rows `rows` of this cache take the content of `other`'s rows (in order)."""
        self.keys[:, rows], self.values[:, rows] = other.keys, other.values
        self.lengths[rows] = other.lengths
