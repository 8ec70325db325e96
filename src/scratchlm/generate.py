"""Text generation: incremental decoding with a key/value cache, sampling and beam search.

Decoders compute the next-token logits of several rows (prompts or beams) at once:

- `KVCacheDecoder` runs the model's one forward pass with a key/value cache (kvcache.py): the
  prompt once, then each new token alone, attending to every cached key. Its logits equal the full
  forward pass over the whole context. It decides what goes into the cache: windows, padding, rows.
- `RecomputeDecoder` runs the full forward pass over the whole context for every token: the
  reference the cache is measured against.

Context window: a row's context never exceeds `max_seq_len` (L) tokens. When a new token would make
it longer, the row keeps its most recent half window (prompts.py, the one policy for a context that
does not fit) and its cache rows are rebuilt from them by one forward pass over the kept window
(positions restart at 0, as in training). Keeping half means a rebuild, one pass over L/2 tokens,
happens at most once every L/2 new tokens: about one token's work per generated token, while the
model always sees at least L/2 tokens of context. Prompts longer than L are cut the same way.

Batches: each row fills its own cache slots from slot 0, so rows of different lengths need no left
padding; prompts are right-padded for their one batched forward pass (causality keeps real tokens
from seeing the padding after them) and each row then continues after its own last real token.
Rows join (`add`) and leave (`select`) between steps: a batch gives exactly what its prompts give
one by one, and a server can batch requests that arrive at different times.

Strategies (sampling.py): greedy (temperature 0, the default), sampling with a temperature and
optional top-k and top-p (nucleus) filtering, and beam search with length normalisation (one prompt
at a time; its beams form the batch). Generation stops at the end-of-sequence token, which is not
returned, or after `max_new_tokens`. This module knows token ids only, never text.
"""

from collections.abc import Iterator

import numpy as np

from .checks import check_token_ids, is_int
from .errors import InputError
from .kvcache import KVCache
from .layers.activations import log_softmax
from .prompts import fit
from .sampling import GREEDY, Sampling, next_tokens

# ------------------------------------------------------------------------------------ decoders


def fit_window(context: list[int], max_seq_len: int) -> list[int]:
    """The context itself if it fits, else what the one policy for a context that does not fit
    keeps (prompts.fit) with half the window free for the tokens to come."""
    if len(context) <= max_seq_len:
        return context
    return fit(context, max_seq_len, max_seq_len // 2)


def _right_padded(contexts: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Contexts (some may be empty) as one right-padded (B, T) id array, and their lengths (B,)."""
    lengths = np.array([len(c) for c in contexts])
    ids = np.zeros((len(contexts), max(1, lengths.max())), dtype=np.intp)
    for row, context in zip(ids, contexts, strict=True):
        row[: len(context)] = context
    return ids, lengths


class KVCacheDecoder:
    """Next-token logits from the model's forward pass with a key/value cache (module docstring).

    capacity: the rows its cache holds before it grows (a server sets its batch limit)."""

    def __init__(self, model, capacity: int = 0):
        self.model = model
        self.max_seq_len = model.config.max_seq_len
        self.contexts: list[list[int]] = []  # the tokens each row sees (within its window)
        self.kv = KVCache(model, 0, capacity)

    def start(self, contexts: list[list[int]]) -> np.ndarray:
        """Forget every row, then `add` these -> their next-token logits (B, V)."""
        self.contexts = []
        self.kv.select([])
        return self.add(contexts)

    def add(self, contexts: list[list[int]]) -> np.ndarray:
        """New rows after the existing ones, their caches filled in place by one forward pass over
        their contexts -> the new rows' next-token logits (n, V). On an error (an id out of
        range) the decoder is left as it was."""
        contexts = [fit_window(list(c), self.max_seq_len) for c in contexts]
        before = self.kv.batch
        try:
            logits = self._prefill(self.kv.add_rows(len(contexts)), contexts)
        except BaseException:
            self.kv.select(np.arange(before))
            raise
        self.contexts += contexts
        return logits

    def advance(self, tokens) -> np.ndarray:
        """Append one token to every row (tokens (B,)) -> next-token logits (B, V)."""
        tokens = np.asarray(tokens)
        full = [b for b, c in enumerate(self.contexts) if len(c) == self.max_seq_len]
        for context, token in zip(self.contexts, tokens, strict=True):
            context.append(int(token))
        if full:  # these rows slide their window: rebuild their caches up to the new token
            for b in full:
                self.contexts[b] = fit_window(self.contexts[b], self.max_seq_len)
            kv = self.kv.scratch(len(full))
            self._prefill(kv, [self.contexts[b][:-1] for b in full])
            self.kv.replace(full, kv)
        return self.model.forward(tokens[:, None], kv=self.kv)[0][:, -1]  # (B, V)

    def select(self, rows) -> None:
        """Keep (and reorder or repeat) the given rows, e.g. the surviving beams."""
        self.kv.select(rows)
        contexts, seen = [], set()
        for r in rows:  # a row kept twice (beams) gets its own copy of the context
            contexts.append(list(self.contexts[r]) if r in seen else self.contexts[r])
            seen.add(r)
        self.contexts = contexts

    def _prefill(self, kv, contexts):
        """Fill the empty rows of `kv` with `contexts` -> each row's next-token logits (B, V)."""
        ids, lengths = _right_padded(contexts)
        logits = self.model.forward(ids, kv=kv)[0]  # (B, T, V)
        kv.lengths = lengths  # each row continues after its last real token
        return logits[np.arange(len(contexts)), np.maximum(lengths - 1, 0)]


class RecomputeDecoder:
    """Next-token logits from the model's full forward pass over each row's whole context."""

    def __init__(self, model):
        self.model = model
        self.contexts: list[list[int]] = []

    def start(self, contexts: list[list[int]]) -> np.ndarray:
        self.contexts = []
        return self.add(contexts)

    def add(self, contexts: list[list[int]]) -> np.ndarray:
        self.contexts += [fit_window(list(c), self.model.config.max_seq_len) for c in contexts]
        return self._logits()[-len(contexts) :]

    def advance(self, tokens) -> np.ndarray:
        contexts = [c + [int(t)] for c, t in zip(self.contexts, tokens, strict=True)]
        return self.start(contexts)

    def select(self, rows) -> None:
        self.contexts = [self.contexts[r] for r in rows]

    def _logits(self):
        ids, lengths = _right_padded(self.contexts)
        logits = self.model.logits(ids)  # (B, T, V)
        return logits[np.arange(len(lengths)), lengths - 1]  # (B, V)


def make_decoder(model, use_cache=True):
    """The cached decoder, or full recomputation (the reference) when use_cache is False."""
    return KVCacheDecoder(model) if use_cache else RecomputeDecoder(model)


# ------------------------------------------------------------------------------------ strategies


def sample_steps(decoder, prompts, sampling: Sampling, eos_id: int) -> Iterator[tuple]:
    """Yield (rows, tokens) after every step: which prompts got a new token, and the tokens.

    A row that draws `eos_id` stops (the eos is not yielded) and leaves the decoder's batch.
    Sampling draws from one generator seeded by `sampling.seed` for the whole batch.
    """
    if sampling.max_new_tokens == 0:
        return
    rng = np.random.default_rng(sampling.seed)
    logits = decoder.start(prompts)
    rows = np.arange(len(prompts))
    for step in range(sampling.max_new_tokens):
        tokens = next_tokens(logits, sampling, rng)
        going = tokens != eos_id  # (B,)
        rows, tokens = rows[going], tokens[going]
        if len(rows):
            yield rows, tokens
        if not len(rows) or step == sampling.max_new_tokens - 1:
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
    model, prompts, sampling: Sampling = GREEDY, eos_id=None, use_cache=True
) -> list[list[int]]:
    """The generated tokens (no prompt, no `</s>`) for each of `prompts` (lists of token ids).

    eos_id: where to stop; None means the tokenizer's `</s>` (no stop for a bare model).
    """
    if len(prompts) == 0:
        raise InputError("prompts is empty: give at least one prompt")
    prompts = [check_prompt(model, p, f"prompts[{i}]") for i, p in enumerate(prompts)]
    eos_id = resolve_eos(model, eos_id)
    decoder = make_decoder(model, use_cache)
    if sampling.beam > 1:
        return [
            beam_search(decoder, p, sampling.beam, sampling.max_new_tokens, eos_id) for p in prompts
        ]
    out = [[] for _ in prompts]
    for rows, tokens in sample_steps(decoder, prompts, sampling, eos_id):
        for r, t in zip(rows, tokens, strict=True):
            out[r].append(int(t))
    return out


def generate_stream(
    model, prompt, sampling: Sampling = GREEDY, eos_id=None, use_cache=True
) -> Iterator[int]:
    """The tokens `generate_batch` gives for one prompt, yielded one by one as they are made
    (for streaming output; beam search has no final tokens before it ends, so it is not offered).
    The arguments are checked at once, not at the first token."""
    if sampling.beam > 1:
        raise InputError("beam search cannot stream: its best sequence is known only at the end")
    prompt = check_prompt(model, prompt, "prompt")
    steps = sample_steps(
        make_decoder(model, use_cache), [prompt], sampling, resolve_eos(model, eos_id)
    )
    return (int(tokens[0]) for _, tokens in steps)


# --------------------------------------------------------------------------------- validation


def check_prompt(model, prompt, what="prompt") -> list[int]:
    """The prompt as a list of ints, or an InputError naming what is wrong with it."""
    return check_token_ids(prompt, model.config.vocab_size, what, ndim=1).tolist()


def resolve_eos(model, eos_id) -> int:
    """The id to stop at: `eos_id`, else the tokenizer's, else -1 (no token has it: never stop)."""
    if eos_id is None:
        return -1 if model.tokenizer is None else model.tokenizer.eos_id
    if not is_int(eos_id) or not 0 <= eos_id < model.config.vocab_size:
        raise InputError(
            f"eos_id must be a token id below vocab_size {model.config.vocab_size}, got {eos_id!r}"
        )
    return eos_id
