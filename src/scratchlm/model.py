"""`Model`: the Tiny Recursive Model of DESIGN.md section 2, its initialisation, forward and backward.

    h = tok_emb[x] + pos_emb[:T]
    h = block^depth(h)                       (block.py; per-token adaptive depth in act.py)
    logits = DyT(h; norm_f) @ head.w
    loss = masked mean of -log softmax(logits)[target]
           (+ ponder_weight * masked mean of N_t + R_t with adaptive depth)

Per-call statistics for training logs: `loss(..., return_stats=True)` and
`loss_and_grads(..., return_stats=True)` also return a dict with the cross-entropy `ce`, the
unweighted ponder cost `ponder` (0 at fixed depth) and `depth_mean`/`depth_min`/`depth_max` over the
counted positions. Nothing about a call is kept on the model.

Generation (`Model.generate`) lives in generate.py: a key/value cache per recursion step, sampling,
beam search.

The parameters are a flat dict `name -> ndarray` with the names and shapes of `config.param_shapes`.
This file validates the caller's arrays; the layers below trust theirs.
"""

import numpy as np

from .act import act_backward, act_forward, depth_stats, ponder_cost
from .block import recursive_backward, recursive_forward
from .config import ModelConfig, param_shapes
from .errors import InputError
from .generate import check_prompt, generate_batch
from .layers.cross_entropy import cross_entropy_backward, cross_entropy_forward
from .layers.dyt import dyt_backward, dyt_forward
from .layers.embedding import embedding_backward, embedding_forward
from .layers.linear import linear_backward, linear_forward

DTYPES = ("float32", "float64")


def init_params(cfg: ModelConfig, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
    """The initialisation scheme.

    DyT does not rescale its input, so the residual stream starts at unit scale: embeddings ~ N(0, 1)
    (positions at 0.1 so that tokens dominate), where tanh(0.5 x) is in its useful range. Every matrix
    reading the stream is N(0, 1/fan_in) so activations keep their scale. The two matrices that WRITE
    into the stream (attn.wo, ffn.w2) are further divided by sqrt(2 * steps): the 2 * steps residual
    branches then add up to a bounded variance however deep the recursion (the GPT-2 trick). The
    output head is small (std 0.02) so the first loss is ln(V): a uniform guess.
    """
    shapes = param_shapes(cfg)
    out_scale = 1.0 / np.sqrt(2 * cfg.n_steps)
    params = {}
    for name, shape in shapes.items():
        leaf = name.rsplit(".", 1)[-1]
        if name == "tok_emb":
            std = 1.0
        elif name == "pos_emb":
            std = 0.1
        elif name == "head.w" or leaf == "cope":
            std = 0.02
        elif leaf in ("wq", "wk", "wv", "w1", "w3"):
            std = 1.0 / np.sqrt(shape[0])
        elif leaf in ("wo", "w2"):
            std = out_scale / np.sqrt(shape[0])
        else:
            std = None
        if std is not None:
            params[name] = rng.standard_normal(shape) * std
        elif leaf == "alpha":
            params[name] = np.full(shape, cfg.dyt_alpha_init)
        elif leaf == "gamma":
            params[name] = np.ones(shape)
        elif name in ("block.attn_scale", "block.ffn_scale"):
            params[name] = np.full(shape, cfg.residual_scale_init)
        else:  # beta and the halting unit start at zero
            params[name] = np.zeros(shape)
    return {name: value.astype(dtype) for name, value in params.items()}


class Model:
    def __init__(self, config: ModelConfig, tokenizer=None, seed: int = 0, dtype="float32"):
        if str(np.dtype(dtype)) not in DTYPES:
            raise InputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.config = config
        self.tokenizer = tokenizer
        self.dtype = np.dtype(dtype)
        self.params = init_params(config, np.random.default_rng(seed), self.dtype)

    @property
    def num_parameters(self) -> int:
        return sum(p.size for p in self.params.values())

    # ----------------------------------------------------------------------- forward / backward

    def forward(self, ids):
        """ids (B, T) -> logits (B, T, V), cache for `backward`.

        The cache is (embedding, block, final norm, head); with adaptive depth its block part is an
        `act.ActCache`, whose `N` and `R` (B, T) are each token's depth and remainder.
        """
        ids = self._check_ids(ids, "ids")
        p, cfg = self.params, self.config
        h, cache_emb = embedding_forward(ids, p["tok_emb"], p.get("pos_emb"))  # (B, T, d)
        if cfg.adaptive_depth:
            h, _, cache_rec = act_forward(h, p, cfg)  # h: the mixture of the steps' states
        else:
            h, cache_rec = recursive_forward(h, p, cfg.depth)
        u, cache_nf = dyt_forward(h, p["norm_f.alpha"], p["norm_f.gamma"], p["norm_f.beta"])
        logits, cache_head = linear_forward(u, p["head.w"])  # (B, T, V)
        return logits, (cache_emb, cache_rec, cache_nf, cache_head)

    def backward(self, dlogits, cache, dR=None):
        """dL/dlogits (B, T, V) -> gradients of every parameter (same keys as `params`).

        dR (B, T): with adaptive depth, dL/dR_t from the ponder cost (None: the loss has none).
        """
        cache_emb, cache_rec, cache_nf, cache_head = cache
        p = self.params
        # The block is shared by all steps: its gradients are sums, accumulated from zero.
        grads = {
            name: np.zeros_like(value) for name, value in p.items() if name.startswith("block.")
        }
        du, grads["head.w"] = linear_backward(dlogits, cache_head)
        dh, *dnorm = dyt_backward(du, cache_nf)
        grads.update(zip(("norm_f.alpha", "norm_f.gamma", "norm_f.beta"), dnorm, strict=True))
        if self.config.adaptive_depth:
            dR = np.zeros(dh.shape[:2], dtype=dh.dtype) if dR is None else dR  # (B, T)
            dh = act_backward(dh, dR, cache_rec, p, grads)
        else:
            dh = recursive_backward(dh, cache_rec, p, grads)
        grads["tok_emb"], dpos = embedding_backward(dh, cache_emb)
        if "pos_emb" in p:
            grads["pos_emb"] = np.zeros_like(p["pos_emb"])
            grads["pos_emb"][: dpos.shape[0]] = dpos
        return grads

    def logits(self, ids) -> np.ndarray:
        return self.forward(ids)[0]

    def loss(self, ids, targets, mask=None, return_stats=False):
        """The loss alone (evaluation): no gradients are computed. -> loss, or (loss, stats)."""
        logits, cache = self.forward(ids)
        loss, _, _, stats = self._objective(logits, cache, targets, mask)
        return (loss, stats) if return_stats else loss

    def loss_and_grads(self, ids, targets, mask=None, return_stats=False):
        """-> (loss, grads), or (loss, grads, stats): grads has the keys and shapes of `params`."""
        logits, cache = self.forward(ids)
        loss, cache_ce, dR, stats = self._objective(logits, cache, targets, mask)
        grads = self.backward(cross_entropy_backward(cache_ce), cache, dR)
        return (loss, grads, stats) if return_stats else (loss, grads)

    def _objective(self, logits, cache, targets, mask):
        """-> total loss, cross-entropy cache, dL/dR (None at fixed depth), stats (module doc)."""
        targets, mask = self._check_targets(targets, mask, logits.shape[:2])
        ce, cache_ce = cross_entropy_forward(logits, targets, mask)
        cfg = self.config
        if not cfg.adaptive_depth:
            depth = {"depth_mean": float(cfg.depth), "depth_min": cfg.depth, "depth_max": cfg.depth}
            return ce, cache_ce, None, {"ce": ce, "ponder": 0.0, **depth}
        act = cache[1]
        ponder, dponder = ponder_cost(act.N, act.R, mask)
        stats = {"ce": ce, "ponder": ponder, **depth_stats(act.N, mask)}
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
        # Checked here so that errors name "prompt", not "prompts[0]".
        prompt_ids = check_prompt(self, prompt_ids, "prompt")
        return generate_batch(
            self, [prompt_ids], max_new_tokens, temperature, top_k, top_p, beam, seed, eos_id
        )[0]

    # ------------------------------------------------------------------------------ validation

    def _check_ids(self, ids, what):
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
            raise InputError(f"{what} must be a non-empty 2-D array (batch, time), got {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise InputError(f"{what} must hold integer token ids, got dtype {ids.dtype}")
        if ids.shape[1] > self.config.max_seq_len:
            raise InputError(
                f"{what} has {ids.shape[1]} positions; max_seq_len is {self.config.max_seq_len}"
            )
        bad = (ids < 0) | (ids >= self.config.vocab_size)
        if bad.any():
            b, t = np.argwhere(bad)[0]
            raise InputError(
                f"{what}[{b}, {t}] = {ids[b, t]} is not a token id (vocab_size "
                f"{self.config.vocab_size})"
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
