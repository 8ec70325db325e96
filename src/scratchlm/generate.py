"""Text generation: incremental decoding with a key/value cache, sampling and beam search.

Decoders compute the next-token logits of several rows (prompts or beams) at once:

- `KVCacheDecoder` keeps a key/value cache FOR EACH RECURSION STEP. The shared block runs `depth`
  times and step s attends over keys and values built from the hidden states entering step s, so
  each step needs its own cache. A new token then runs the block over that token alone, attending
  to every cached key; the logits equal the full forward pass over the whole context. With adaptive
  depth the new tokens run act.py's halting loop over these cached steps (see `_run_act_steps`).
- `RecomputeDecoder` runs the model's full forward pass over the whole context for every token: the
  reference the cache is measured against.

Context window: a row's context never exceeds `max_seq_len` (L) tokens. When a new token would make
it longer, the row keeps its most recent L // 2 tokens and the cache is rebuilt from them by one full
forward pass over the kept window (positions restart at 0, as in training). Keeping half means a
rebuild, one batched pass over L/2 tokens, happens at most once every L/2 new tokens: about one
token's work per generated token, while the model always sees at least L/2 tokens of context.
Prompts longer than L are cut the same way.

Batches: prompts of different lengths are LEFT-padded so every row writes its next token into the
same cache slot. A `hide` mask keeps real tokens from seeing the padding (a padding slot sees only
itself, which keeps its state finite) and positions count from each row's first real token, so a
batch gives exactly what its prompts give one by one. Rows that reach `</s>` leave the batch.

Strategies: greedy (temperature 0, the default), sampling with a temperature and optional top-k and
top-p (nucleus) filtering, and beam search with length normalisation (one prompt at a time; its
beams form the batch). Generation stops at the end-of-sequence token, which is not returned, or
after `max_new_tokens`. Not handled here: repetition penalties, stop strings, constrained decoding.
"""

from collections.abc import Iterator
from numbers import Integral, Real

import numpy as np

from .act import halting_loop
from .errors import InputError
from .layers.attention import cope_attention_forward, merge_heads, project_qkv
from .layers.dyt import dyt_forward
from .layers.embedding import embedding_forward
from .layers.linear import linear_forward
from .layers.swiglu import swiglu_fused_forward

# ------------------------------------------------------------------------------------ decoders


def fit_window(context: list[int], max_seq_len: int) -> list[int]:
    """The context itself if it fits, else its most recent max_seq_len // 2 tokens."""
    if len(context) <= max_seq_len:
        return context
    return context[-max(1, max_seq_len // 2) :]


def fused_weights(p):
    """The parameters plus [wq | wk | wv] and [w1 | w3] side by side, concatenated once: per call,
    for a single token, the copies would cost as much as the products themselves."""
    w_qkv = np.concatenate([p[f"block.attn.{x}"] for x in ("wq", "wk", "wv")], axis=1)  # (d, 3d)
    w13 = np.concatenate([p["block.ffn.w1"], p["block.ffn.w3"]], axis=1)  # (d, 2F)
    return {**p, "block.attn.w_qkv": w_qkv, "block.ffn.w13": w13}


def cached_block_step(h, w, s, keys, values, start, hide):
    """Recursion step s for new tokens, attending to the cache of step s.

    h (B, Tn, d): the new tokens' states entering step s, at cache slots start .. start+Tn-1.
    w: `fused_weights(params)`. keys, values (B, H, L, dh): step s's cache; the new tokens' keys
    and values are written into it. Returns the new tokens' states after step s, (B, Tn, d).
    """
    end = start + h.shape[1]
    q, k, v = _queries_keys_values(h, w, keys.shape[1])  # (B, H, Tn, dh) each
    keys[:, :, start:end] = k
    values[:, :, start:end] = v
    k, v = keys[:, :, :end], values[:, :, :end]  # (B, H, end, dh): the cached and the new
    o, _ = cope_attention_forward(q, k, v, w["block.attn.cope"], hide)  # (B, H, Tn, dh)
    a, _ = linear_forward(merge_heads(o), w["block.attn.wo"])  # (B, Tn, d)
    h = h + w["block.attn_scale"][s] * a
    u2, _ = dyt_forward(h, *(w[f"block.norm2.{x}"] for x in ("alpha", "gamma", "beta")))
    f, _ = swiglu_fused_forward(u2, w["block.ffn.w13"], w["block.ffn.w2"])  # (B, Tn, d)
    return h + w["block.ffn_scale"][s] * f


def _queries_keys_values(h, w, n_heads):
    """The attention's q, k, v (B, H, Tn, dh) of states h (B, Tn, d) entering any step: the step
    index only enters through the residual scales, so the same state gives the same keys."""
    u1, _ = dyt_forward(h, *(w[f"block.norm1.{x}"] for x in ("alpha", "gamma", "beta")))
    return project_qkv(u1, w["block.attn.w_qkv"], n_heads)[:3]


class KVCacheDecoder:
    """Next-token logits from a per-recursion-step key/value cache (see the module docstring).

    Cache slot j of row b holds the token at position j - pads[b]; slots before pads[b] are padding.
    """

    def __init__(self, model):
        self.model = model
        self.weights = fused_weights(model.params)
        cfg = model.config
        self.max_seq_len = cfg.max_seq_len
        self._cache_shape = (cfg.n_steps, cfg.n_heads, cfg.max_seq_len, cfg.d_head)

    @property
    def contexts(self) -> list[list[int]]:
        """The tokens each row currently sees (prompt and generated, within the window)."""
        return [
            row[pad : self.length].tolist() for row, pad in zip(self.tokens, self.pads, strict=True)
        ]

    def start(self, contexts: list[list[int]]) -> np.ndarray:
        """Fill the cache from scratch with the rows' contexts -> next-token logits (B, V)."""
        contexts = [fit_window(c, self.max_seq_len) for c in contexts]
        T = max(len(c) for c in contexts)
        S, H, L, dh = self._cache_shape
        self.pads = np.array([T - len(c) for c in contexts])
        self.tokens = np.zeros((len(contexts), L), dtype=np.intp)  # padding slots hold id 0
        for row, pad, context in zip(self.tokens, self.pads, contexts, strict=True):
            row[pad:T] = context
        self.keys = np.empty((S, len(contexts), H, L, dh), dtype=self.model.dtype)
        self.values = np.empty_like(self.keys)
        self.length = 0
        return self._forward(self.tokens[:, :T])

    def advance(self, tokens) -> np.ndarray:
        """Append one token to every row (tokens (B,)) -> next-token logits (B, V)."""
        tokens = np.asarray(tokens)
        if self.length == self.max_seq_len:  # the longest row is full: slide its window
            return self.start([c + [int(t)] for c, t in zip(self.contexts, tokens, strict=True)])
        self.tokens[:, self.length] = tokens
        return self._forward(tokens[:, None])

    def select(self, rows) -> None:
        """Keep (and reorder or repeat) the given rows, e.g. the surviving beams."""
        rows = np.asarray(rows)
        # Slots that are padding in every remaining row are dropped, keeping the cache short.
        shift = self.pads[rows].min()
        n = self.length - shift
        keys = np.empty((self.keys.shape[0], len(rows), *self.keys.shape[2:]), self.keys.dtype)
        values = np.empty_like(keys)
        keys[:, :, :, :n] = self.keys[:, rows, :, shift : self.length]
        values[:, :, :, :n] = self.values[:, rows, :, shift : self.length]
        self.keys, self.values = keys, values
        self.tokens = np.roll(self.tokens[rows], -shift, axis=1)
        self.pads = self.pads[rows] - shift
        self.length = n

    def _forward(self, ids) -> np.ndarray:
        """ids (B, Tn): new tokens for slots length .. length+Tn-1 -> logits after the last (B, V)."""
        p = self.weights
        start, end = self.length, self.length + ids.shape[1]
        h, _ = embedding_forward(ids, p["tok_emb"])  # (B, Tn, d)
        if "pos_emb" in p:
            # Each row counts positions from its first real token; padding takes position 0.
            positions = np.maximum(np.arange(start, end) - self.pads[:, None], 0)  # (B, Tn)
            h += p["pos_emb"][positions]
        h = self._run_steps(h, start, self._hide(start, end))
        self.length = end
        norm_f = (p[f"norm_f.{x}"] for x in ("alpha", "gamma", "beta"))
        u, _ = dyt_forward(h[:, -1], *norm_f)  # (B, d): only the last position is needed
        return linear_forward(u, p["head.w"])[0]  # (B, V)

    def _run_steps(self, h, start, hide):
        """The recursion: the block `depth` times, step s reading and extending cache s."""
        if self.model.config.adaptive_depth:
            return self._run_act_steps(h, start, hide)
        for s in range(self.model.config.depth):
            h = cached_block_step(h, self.weights, s, self.keys[s], self.values[s], start, hide)
        return h

    def _run_act_steps(self, h, start, hide):
        """Adaptive depth: act.py's halting loop over the cached steps -> the new tokens' mixture.

        A halted token's state is frozen, so its keys and values at every later step are those of
        its frozen state (the loop writes them while other new tokens still run). When the loop
        stops early, a later token may still run those skipped steps and must find the keys there:
        they are written at once from the final states, as the full forward pass would compute them.
        """
        w, end = self.weights, start + h.shape[1]

        def step(h, s):
            return cached_block_step(h, w, s, self.keys[s], self.values[s], start, hide), None

        out, frozen, _, _, steps = halting_loop(h, w, self.model.config, step)
        _, k, v = _queries_keys_values(frozen, w, self.keys.shape[2])  # (B, H, Tn, dh) each
        self.keys[len(steps) :, :, :, start:end] = k  # the same for every skipped step
        self.values[len(steps) :, :, :, start:end] = v
        return out

    def _hide(self, start, end):
        """(B, 1, Tq, Tk) True where a query must not see a key: padding, except a padding slot's
        own key. None when no row is padded."""
        if not self.pads.any():
            return None
        padding = np.arange(end) < self.pads[:, None]  # (B, Tk)
        not_self = ~np.eye(end - start, end, k=start, dtype=bool)  # (Tq, Tk)
        return (padding[:, None, :] & not_self)[:, None]


class RecomputeDecoder:
    """Next-token logits from the model's full forward pass over each row's whole context."""

    def __init__(self, model):
        self.model = model
        self.contexts: list[list[int]] = []

    def start(self, contexts: list[list[int]]) -> np.ndarray:
        self.contexts = [fit_window(list(c), self.model.config.max_seq_len) for c in contexts]
        return self._logits()

    def advance(self, tokens) -> np.ndarray:
        return self.start([c + [int(t)] for c, t in zip(self.contexts, tokens, strict=True)])

    def select(self, rows) -> None:
        self.contexts = [self.contexts[r] for r in rows]

    def _logits(self):
        # Right padding: causal attention keeps every row's real tokens from seeing it.
        lengths = np.array([len(c) for c in self.contexts])
        ids = np.zeros((len(lengths), lengths.max()), dtype=np.intp)
        for row, context in zip(ids, self.contexts, strict=True):
            row[: len(context)] = context
        logits = self.model.logits(ids)  # (B, T, V)
        return logits[np.arange(len(lengths)), lengths - 1]  # (B, V)


def make_decoder(model, use_cache=True):
    """The cached decoder, or full recomputation (the reference) when use_cache is False."""
    return KVCacheDecoder(model) if use_cache else RecomputeDecoder(model)


# ------------------------------------------------------------------------------------ sampling


def log_softmax(logits):
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def top_k_filter(logits, k):
    """logits (B, V) with every token below the k-th largest set to -inf (ties at it are kept)."""
    if k >= logits.shape[-1]:
        return logits
    kth = np.partition(logits, -k, axis=-1)[:, -k:].min(axis=-1, keepdims=True)  # (B, 1)
    return np.where(logits >= kth, logits, -np.inf)


def top_p_filter(logits, p):
    """logits (B, V) keeping, per row, the smallest set of most likely tokens whose probability
    reaches p (nucleus sampling); the rest become -inf."""
    probs = np.exp(log_softmax(logits))  # (B, V)
    order = np.argsort(-probs, axis=-1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, axis=-1)
    # A token is needed while the more likely tokens before it have not yet reached p.
    before = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # (B, V)
    keep = np.empty_like(order, dtype=bool)
    np.put_along_axis(keep, order, before < p, axis=-1)
    return np.where(keep, logits, -np.inf)


def next_tokens(logits, temperature, top_k, top_p, rng):
    """logits (B, V) -> one token per row (B,): argmax at temperature 0, else a sample."""
    if temperature == 0:
        return logits.argmax(axis=-1)
    z = logits / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None and top_p < 1:
        z = top_p_filter(z, top_p)
    cum = np.cumsum(np.exp(log_softmax(z)), axis=-1)  # (B, V)
    u = rng.random((len(cum), 1)) * cum[:, -1:]
    # Inverse CDF: the first token whose cumulative probability exceeds u.
    return np.minimum((cum <= u).sum(axis=-1), cum.shape[-1] - 1)


def sample_steps(decoder, prompts, max_new_tokens, temperature, top_k, top_p, eos_id, rng):
    """Yield (rows, tokens) after every step: which prompts got a new token, and the tokens.

    A row that draws `eos_id` stops (the eos is not yielded) and leaves the decoder's batch.
    """
    if max_new_tokens == 0:
        return
    logits = decoder.start(prompts)
    rows = np.arange(len(prompts))
    for step in range(max_new_tokens):
        tokens = next_tokens(logits, temperature, top_k, top_p, rng)
        going = tokens != eos_id  # (B,)
        rows, tokens = rows[going], tokens[going]
        if len(rows):
            yield rows, tokens
        if not len(rows) or step == max_new_tokens - 1:
            return
        if not going.all():
            decoder.select(np.flatnonzero(going))
        logits = decoder.advance(tokens)


def beam_search(decoder, prompt, beam, max_new_tokens, eos_id, length_penalty=1.0) -> list[int]:
    """The continuation with the best score sum(log p) / n ** length_penalty found by keeping the
    `beam` best partial sequences at every step (n counts the generated tokens, `</s>` included).

    It stops once `beam` sequences have finished and no running one scores better than the worst of
    them at its current length, or after `max_new_tokens`. With beam 1 this is greedy decoding.
    """
    if max_new_tokens == 0:
        return []
    logits = decoder.start([prompt])
    seqs, scores = [[]], np.zeros(1)
    done = []  # (normalised score, tokens) of the best finished sequences, best first
    for n in range(1, max_new_tokens + 1):
        total = scores[:, None] + log_softmax(logits)  # (rows, V): every one-token extension
        # 2 * beam candidates leave `beam` that do not end, whatever the end-of-sequence ones.
        best = np.argsort(-total, axis=None, kind="stable")[: 2 * beam]
        rows, toks = np.divmod(best, total.shape[1])
        going = []
        for rank, (r, t) in enumerate(zip(rows, toks, strict=True)):
            if t == eos_id:
                if rank < beam:
                    done.append((total[r, t] / n**length_penalty, seqs[r]))
            elif len(going) < beam:
                going.append(rank)
        done = sorted(done, key=lambda d: d[0], reverse=True)[:beam]
        if not going:  # only possible with a vocabulary smaller than the beam
            return done[0][1]
        rows, toks = rows[going], toks[going]
        seqs = [seqs[r] + [int(t)] for r, t in zip(rows, toks, strict=True)]
        scores = total[rows, toks]
        finished = len(done) == beam and scores.max() / n**length_penalty <= done[-1][0]
        if finished or n == max_new_tokens:
            break
        decoder.select(rows)
        logits = decoder.advance(toks)
    running = [(score / n**length_penalty, seq) for score, seq in zip(scores, seqs, strict=True)]
    return max(done + running, key=lambda d: d[0])[1]


# --------------------------------------------------------------------------------- public API


def generate_batch(
    model,
    prompts,
    max_new_tokens=64,
    temperature=0.0,
    top_k=None,
    top_p=None,
    beam=1,
    seed=None,
    eos_id=None,
    length_penalty=1.0,
    use_cache=True,
) -> list[list[int]]:
    """The generated tokens (no prompt, no `</s>`) for each of `prompts` (lists of token ids).

    eos_id: where to stop; None means the tokenizer's `</s>` (no stop for a bare model). Sampling
    draws from one generator seeded by `seed` for the whole batch.
    """
    prompts = [check_prompt(model, p, f"prompts[{i}]") for i, p in enumerate(prompts)]
    if not prompts:
        raise InputError("prompts is empty: give at least one prompt")
    check_options(model, max_new_tokens, temperature, top_k, top_p, beam, seed, eos_id)
    eos_id = _default_eos(model, eos_id)
    decoder = make_decoder(model, use_cache)
    if beam > 1:
        return [
            beam_search(decoder, p, beam, max_new_tokens, eos_id, length_penalty) for p in prompts
        ]
    out = [[] for _ in prompts]
    rng = np.random.default_rng(seed)
    steps = sample_steps(decoder, prompts, max_new_tokens, temperature, top_k, top_p, eos_id, rng)
    for rows, tokens in steps:
        for r, t in zip(rows, tokens, strict=True):
            out[r].append(int(t))
    return out


def generate_stream(
    model,
    prompt,
    max_new_tokens=64,
    temperature=0.0,
    top_k=None,
    top_p=None,
    seed=None,
    eos_id=None,
    use_cache=True,
) -> Iterator[int]:
    """The tokens `generate_batch` gives for one prompt, yielded one by one as they are made
    (for streaming output; beam search has no final tokens before it ends, so it is not offered).
    The arguments are checked at once, not at the first token."""
    prompt = check_prompt(model, prompt, "prompt")
    check_options(model, max_new_tokens, temperature, top_k, top_p, 1, seed, eos_id)
    decoder = make_decoder(model, use_cache)
    rng = np.random.default_rng(seed)
    eos_id = _default_eos(model, eos_id)
    steps = sample_steps(decoder, [prompt], max_new_tokens, temperature, top_k, top_p, eos_id, rng)
    return (int(tokens[0]) for _, tokens in steps)


def _default_eos(model, eos_id):
    """The id to stop at: `eos_id`, else the tokenizer's, else -1 (no token has it: never stop)."""
    if eos_id is not None:
        return eos_id
    return -1 if model.tokenizer is None else model.tokenizer.eos_id


# --------------------------------------------------------------------------------- validation


def check_prompt(model, prompt, what="prompt") -> list[int]:
    """The prompt as a list of ints, or an InputError naming what is wrong with it."""
    ids = np.asarray(prompt)
    if ids.ndim != 1:
        raise InputError(f"{what} must be a flat sequence of token ids, got shape {ids.shape}")
    if ids.size == 0:
        raise InputError(f"{what} is empty: give at least one token id")
    if not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"{what} must hold integer token ids, got {ids.dtype}")
    bad = np.flatnonzero((ids < 0) | (ids >= model.config.vocab_size))
    if bad.size:
        i = bad[0]
        raise InputError(
            f"{what}[{i}] = {ids[i]} is not a token id (vocab_size {model.config.vocab_size})"
        )
    return ids.tolist()


def _is_int(x):
    return isinstance(x, Integral) and not isinstance(x, bool)


def check_options(model, max_new_tokens, temperature, top_k, top_p, beam, seed, eos_id):
    """InputError with a clear message for any generation option out of its range."""
    if not _is_int(max_new_tokens) or max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, Real):
        raise InputError(f"temperature must be a number, got {temperature!r}")
    if not 0 <= temperature < float("inf"):
        raise InputError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise InputError(f"top_k must be an integer >= 1 (or None for no limit), got {top_k!r}")
    if top_p is not None and (
        isinstance(top_p, bool) or not isinstance(top_p, Real) or not 0 < top_p <= 1
    ):
        raise InputError(f"top_p must be a number in (0, 1] (or None), got {top_p!r}")
    if not _is_int(beam) or beam < 1:
        raise InputError(f"beam must be an integer >= 1, got {beam!r}")
    if beam > 1 and (temperature > 0 or top_k is not None or top_p is not None):
        raise InputError("beam search is deterministic: use it without temperature, top_k, top_p")
    if seed is not None and (not _is_int(seed) or seed < 0):
        raise InputError(f"seed must be an integer >= 0 (or None), got {seed!r}")
    if eos_id is not None and (not _is_int(eos_id) or not 0 <= eos_id < model.config.vocab_size):
        raise InputError(
            f"eos_id must be a token id below vocab_size {model.config.vocab_size}, got {eos_id!r}"
        )
