"""Rotary position embedding (RoPE, Su et al. 2021): queries and keys turned by their positions.

Each head's vector is cut in two halves, and feature pair (i, i + dh/2) of the token at absolute
position t is rotated by the angle t * theta_i, theta_i = rope_base^(-2i/dh):

    x'[i]        = x[i] cos(t theta_i) - x[i + dh/2] sin(t theta_i)
    x'[i + dh/2] = x[i] sin(t theta_i) + x[i + dh/2] cos(t theta_i)

A rotated query and a rotated key meet in q'.k', which depends on their positions only through
their DIFFERENCE: attention sees relative positions, though each vector is turned by its absolute
one. So keys can be rotated once, when they are made, and cached as they are (decoding). This is the
"half-split" pairing of GPT-NeoX and Llama, not the interleaved pairs of the paper: the same
function up to a fixed permutation of the features. RoPE has no parameters.
"""

import functools

import numpy as np

from .attention import Position, softmax_attention_backward, softmax_attention_forward


@functools.lru_cache(maxsize=64)
def _angles(n_positions: int, d_head: int, base: float, dtype: np.dtype):
    """cos and sin of t * theta_i for t < n_positions, i < d_head / 2: (n_positions, d_head / 2)
    each, built once per shape and shared (read-only)."""
    theta = base ** (-np.arange(0, d_head, 2, dtype=np.float64) / d_head)  # (dh/2,)
    angle = np.arange(n_positions, dtype=np.float64)[:, None] * theta  # (L, dh/2)
    cos, sin = np.cos(angle).astype(dtype), np.sin(angle).astype(dtype)
    cos.flags.writeable = sin.flags.writeable = False
    return cos, sin


def rope_forward(x, positions, cfg):
    """x (B, H, T, dh), positions (B, T) ints or None (0 .. T-1 in every row) -> x' (B, H, T, dh).

    cfg: its max_seq_len (the positions there are) and rope_base."""
    T, dh = x.shape[2], x.shape[3]
    cos, sin = _angles(cfg.max_seq_len, dh, float(cfg.rope_base), x.dtype)  # (L, dh/2)
    if positions is None:
        cos, sin = cos[:T], sin[:T]  # (T, dh/2), the same for every row and head
    else:
        cos, sin = cos[positions][:, None], sin[positions][:, None]  # (B, 1, T, dh/2)
    return _rotate(x, cos, sin), (cos, sin)


# A rotation's inverse is its transpose, the rotation by the opposite angle: dx = R(-angle) dx'.
def rope_backward(dout, cache):
    """-> dx (B, H, T, dh)."""
    cos, sin = cache
    return _rotate(dout, cos, -sin)


def _rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # (B, H, T, dh/2) each
    out = np.empty_like(x)
    np.subtract(x1 * cos, x2 * sin, out=out[..., :half])
    np.add(x1 * sin, x2 * cos, out=out[..., half:])
    return out


ROPE = Position(
    lambda cfg: {},  # no parameters
    softmax_attention_forward,
    softmax_attention_backward,
    rope_forward,
    rope_backward,
)
