"""`Model`: the Tiny Recursive Model of docs/design.md section 2, its initialisation, forward and
backward.

    h = tok_emb[x] + pos_emb[:T]              (then dropout, when training asks for it)
    h = block^depth(h)                       (block.py; per-token adaptive depth in act.py)
    logits = DyT(h; norm_f) @ head.w
    loss = masked mean of -log softmax(logits)[target]
           (+ ponder_weight * masked mean of N_t + R_t with adaptive depth)

Per-call statistics for training logs: `loss(..., return_stats=True)` and
`loss_and_grads(..., return_stats=True)` also return a dict with the cross-entropy `ce`, the
unweighted ponder cost `ponder` (0 at fixed depth) and `depth`, an `act.Depth` of the counted
positions. Nothing about a call is kept on the model.

Dropout (layers/dropout.py) runs only when a training step passes a `Dropout` to `loss_and_grads`
(or `forward`): on the embeddings, the attention weights and both residual branches of every step.
Without one, every call is deterministic and does no dropout work: `logits`, `loss`, evaluation and
generation never drop anything.

There is ONE forward pass: training, evaluation and decoding all run `forward`; decoding passes a
key/value cache (kvcache.py) that the attention reads and extends. Generation itself (the decoders,
sampling, beam search) lives in generate.py.

The parameters are a flat dict `name -> ndarray` with the names and shapes of the table in
params.py.
This file validates the caller's arrays; the layers below trust theirs. A config of more than
`MAX_PARAMETERS` parameters is refused before anything is allocated (a clear error, not a
MemoryError from NumPy).
"""

from typing import Any, NamedTuple

import numpy as np

from .act import ActCache, Depth, act_backward, act_forward, ponder_cost
from .block import BlockStepCache, recursive_backward, recursive_forward
from .checks import check_token_ids
from .config import ModelConfig
from .errors import ConfigError, InputError
from .generate import check_prompt, generate_batch
from .layers.cross_entropy import cross_entropy_backward, cross_entropy_forward
from .layers.dropout import dropout_backward, dropout_forward
from .layers.embedding import embedding_backward, embedding_forward
from .layers.linear import linear_backward, linear_forward
from .modelfile import checked_model_parts, read_model_file, save_model
from .params import (
    Weights,
    flat_grads,
    init_params,
    num_parameters,
    param_shapes,
    weights,
    zero_block_grads,
)
from .sampling import Sampling

DTYPES = ("float32", "float64")
MAX_PARAMETERS = (
    2**30
)  # 4 GiB of float32 weights, four times that to train: far past NumPy on a CPU


class ForwardCache(NamedTuple):
    """What `Model.forward` keeps for `Model.backward`."""

    weights: Weights  # the call's weights (fused groups stacked once for the whole call)
    embedding: tuple
    drop_emb: np.ndarray | None  # the embedding's dropout mask
    blocks: list[BlockStepCache] | ActCache  # one cache per step; with adaptive depth, ActCache
    norm_f: Any
    head: tuple


class Model:
    def __init__(
        self, config: ModelConfig, tokenizer=None, seed: int = 0, dtype="float32", *, params=None
    ):
        """A model of `config`: fresh parameters drawn from `seed`, or the given `params` (a dict
        name -> array with the names and shapes of the config's table, e.g. read from a model
        file: then nothing is drawn)."""
        if str(np.dtype(dtype)) not in DTYPES:
            raise InputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        n = num_parameters(config)
        if n > MAX_PARAMETERS:
            raise ConfigError(
                f"the model config describes {n:,} parameters, over the limit of "
                f"{MAX_PARAMETERS:,}; choose smaller sizes"
            )
        self.config = config
        self.tokenizer = tokenizer
        self.dtype = np.dtype(dtype)
        if params is None:
            self.params = init_params(config, np.random.default_rng(seed), self.dtype)
        else:
            self.params = _given_params(config, params, self.dtype)

    @property
    def num_parameters(self) -> int:
        return sum(p.size for p in self.params.values())

    # ----------------------------------------------------------------------- forward / backward

    def forward(self, ids, kv=None, dropout=None):
        """ids (B, T) -> logits (B, T, V), a `ForwardCache` for `backward`.

        kv: None (training, evaluation), or a `KVCache` (decoding): ids are then the NEW tokens of
        each row; they go into the cache after the tokens it holds and attend to all of them.
        dropout: None, or a `Dropout` (training only; module docstring).
        With adaptive depth the cache's `blocks` is an `act.ActCache`, whose `N` and `R` (B, T)
        are each token's depth and remainder.
        """
        ids = self._check_ids(ids, "ids")
        cfg = self.config
        # The fused matrices are built once per call (a cache keeps its own), not once per step.
        w = weights(self.params, cfg) if kv is None else kv.weights
        positions = None if kv is None else kv.extend(ids.shape[1])  # (B, T) slots in the cache
        h, cache_emb = embedding_forward(ids, w.embedding, positions)
        h, drop_emb = dropout_forward(h, dropout)  # (B, T, d)
        if cfg.adaptive_depth:  # h: the mixture of the steps' states
            h, cache_rec = act_forward(h, w, cfg, positions, kv, dropout)
        else:
            h, cache_rec = recursive_forward(h, w, cfg, positions, kv, dropout)
        u, cache_nf = w.parts.norm.forward(h, w.norm_f, cfg)
        logits, cache_head = linear_forward(u, w.head["w"])  # (B, T, V)
        return logits, ForwardCache(w, cache_emb, drop_emb, cache_rec, cache_nf, cache_head)

    def backward(self, dlogits, cache: ForwardCache, dR=None, step_norms: list | None = None):
        """dL/dlogits (B, T, V) -> gradients of every parameter (same keys as `params`).

        dR (B, T): with adaptive depth, dL/dR_t from the ponder cost (None: the loss has none).
        step_norms: a list to receive, for each recursion step, the L2 norm of that step's own
        gradient of the block parameters (gradient analysis; a little extra work).
        """
        cfg, w = self.config, cache.weights
        # Every step adds into its block's gradients (the SAME ones for a shared block); to see
        # each step's own share, every step gets its own until they are summed below.
        grads = zero_block_grads(w, per_step=step_norms is not None)
        du, grads.head["w"] = linear_backward(dlogits, cache.head)
        dh, dnorm_f = w.parts.norm.backward(du, cache.norm_f)
        grads.norm_f.update(dnorm_f)
        if cfg.adaptive_depth:
            dR = np.zeros(dh.shape[:2], dtype=dh.dtype) if dR is None else dR  # (B, T)
            dh = act_backward(dh, dR, cache.blocks, w, grads, cfg)
        else:
            dh = recursive_backward(dh, cache.blocks, w, grads, cfg)
        dh = dropout_backward(dh, cache.drop_emb)
        grads.embedding.update(embedding_backward(dh, cache.embedding))
        if step_norms is not None:
            step_norms[:] = [_norm(b) for b in grads.blocks]
            grads = _sum_steps(grads, w)
        return flat_grads(grads, cfg)

    def logits(self, ids) -> np.ndarray:
        return self.forward(ids)[0]

    def loss(self, ids, targets, mask=None, return_stats=False):
        """The loss alone (evaluation): no gradients are computed. -> loss, or (loss, stats)."""
        logits, cache = self.forward(ids)
        loss, _, _, stats = self._objective(logits, cache, targets, mask)
        return (loss, stats) if return_stats else loss

    def loss_and_grads(self, ids, targets, mask=None, return_stats=False, dropout=None):
        """-> (loss, grads), or (loss, grads, stats): grads has the keys and shapes of `params`.

        dropout: None, or a `Dropout` for this training step; the gradients are then exact for the
        masks it drew."""
        logits, cache = self.forward(ids, dropout=dropout)
        loss, cache_ce, dR, stats = self._objective(logits, cache, targets, mask)
        grads = self.backward(cross_entropy_backward(cache_ce), cache, dR)
        return (loss, grads, stats) if return_stats else (loss, grads)

    def step_gradient_norms(self, ids, targets, mask=None) -> list[float]:
        """Gradient analysis: the L2 norm of each recursion step's own part of the block's
        gradient of the loss on this batch (one norm per step; gradients.py)."""
        logits, cache = self.forward(ids)
        _, cache_ce, dR, _ = self._objective(logits, cache, targets, mask)
        norms = []
        self.backward(cross_entropy_backward(cache_ce), cache, dR, step_norms=norms)
        return norms

    def _objective(self, logits, cache, targets, mask):
        """-> total loss, cross-entropy cache, dL/dR (None at fixed depth), stats (module doc)."""
        targets, mask = self._check_targets(targets, mask, logits.shape[:2])
        ce, cache_ce = cross_entropy_forward(logits, targets, mask)
        cfg = self.config
        if not cfg.adaptive_depth:
            depth = Depth.of(np.full(targets.shape, cfg.depth), mask)
            return ce, cache_ce, None, {"ce": ce, "ponder": 0.0, "depth": depth}
        act = cache.blocks
        ponder, dponder = ponder_cost(act.N, act.R, mask)
        stats = {"ce": ce, "ponder": ponder, "depth": Depth.of(act.N, mask)}
        return ce + cfg.ponder_weight * ponder, cache_ce, cfg.ponder_weight * dponder, stats

    # ------------------------------------------------------------------------------ generation

    def generate(
        self,
        prompt_ids,
        max_new_tokens=64,
        temperature=0.0,
        top_k=None,
        top_p=None,
        beam=1,
        seed=None,
        *,
        eos_id=None,
    ) -> list[int]:
        """The tokens generated after `prompt_ids` (list[int]; no prompt, no `</s>`).

        Greedy at temperature 0 (the default); otherwise sampled, optionally from the top_k most
        likely tokens or the nucleus of probability top_p, reproducibly for a given seed. beam > 1
        runs beam search instead. Stops at `eos_id` (default: the tokenizer's `</s>`) or after
        max_new_tokens. Many prompts at once: `scratchlm.generate.generate_batch`.
        """
        prompt_ids = check_prompt(self, prompt_ids, "prompt")  # so errors name "prompt"
        sampling = Sampling(max_new_tokens, temperature, top_k, top_p, beam, seed)
        return generate_batch(self, [prompt_ids], sampling, eos_id=eos_id)[0]

    def save(self, path, description: str | None = None) -> str:
        """Write the model to `path` (.safetensors or .json, atomically) -> its sha256 digest."""
        return save_model(path, self, description)

    # ------------------------------------------------------------------------------ validation

    def _check_ids(self, ids, what):
        ids = check_token_ids(ids, self.config.vocab_size, what, ndim=2)
        if ids.shape[1] > self.config.max_seq_len:
            raise InputError(
                f"{what} has {ids.shape[1]} positions; max_seq_len is {self.config.max_seq_len}"
            )
        return ids

    def _check_targets(self, targets, mask, shape):
        targets = self._check_ids(targets, "targets")
        if targets.shape != shape:
            raise InputError(f"targets have shape {targets.shape}, ids have {shape}")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != shape:
                raise InputError(f"mask has shape {mask.shape}, ids have {shape}")
            if not mask.any():
                raise InputError("mask is all zero: no target position counts towards the loss")
        return targets, mask


def load_model(path, dtype="float32") -> Model:
    """Load a model (or the model part of a checkpoint) after every check of docs/design.md
    section 5.2; the model is built from the file's tensors, nothing drawn at random."""
    config, tokenizer, tensors = checked_model_parts(read_model_file(path))
    return Model(config, tokenizer, dtype=dtype, params=tensors)


def _given_params(config, params, dtype) -> dict[str, np.ndarray]:
    """`params` as the model's own arrays in `dtype`, after checking names and shapes."""
    shapes = param_shapes(config)
    if not isinstance(params, dict) or params.keys() != shapes.keys():
        given = set(params) if isinstance(params, dict) else set()
        raise InputError(
            f"params do not match the config: missing {sorted(shapes.keys() - given)}, "
            f"unexpected {sorted(given - shapes.keys())}"
        )
    for name, shape in shapes.items():
        if np.shape(params[name]) != shape:
            raise InputError(f"params[{name!r}] has shape {np.shape(params[name])}, not {shape}")
    return {name: np.array(params[name], dtype=dtype) for name in shapes}


def _norm(grads) -> float:
    """The L2 norm of a nest of gradient dicts (a BlockWeights)."""
    return float(np.sqrt(sum(float(np.vdot(g, g)) for part in grads for g in part.values())))


def _sum_steps(grads: Weights, w: Weights) -> Weights:
    """Per-step block gradients (zero_block_grads(per_step=True)) summed back into one set per
    distinct block of `w`."""
    first = {}  # id of a block's weights -> the gradients of the first step that uses it
    for b, g in zip(w.blocks, grads.blocks, strict=True):
        if id(b) not in first:
            first[id(b)] = g
            continue
        for total, part in zip(first[id(b)], g, strict=True):
            for name, value in part.items():
                total[name] += value
    return grads._replace(blocks=tuple(first[id(b)] for b in w.blocks))
