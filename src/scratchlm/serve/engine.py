"""Continuous batching: one worker thread owns the model and decodes every request in ONE batch.

A request is a `Job` on token ids: this file knows no text, chat template or HTTP (service.py does).
The worker repeats:

    1. drop the rows of cancelled jobs (their client went away, or a stop string was found);
    2. admit waiting jobs, up to `max_batch` rows: one forward pass over their prompts fills their
       key/value cache rows in place (prefill) and gives their first next-token logits, so they
       draw their first token in this same turn, together with the rows already decoding;
    3. draw each row's next token with ITS OWN settings and random generator, and report it;
    4. drop the rows that finished (end-of-sequence token, or max_new_tokens reached);
    5. one forward pass over the new token of every remaining row (a decode step), and again.

So a request joins the running batch at the next step and leaves it as soon as it finishes; no
request waits for another to finish unless `max_batch` rows are decoding already. The decoder is
generate.py's `KVCacheDecoder`, whose rows may hold contexts of different lengths; a row that
leaves is replaced by the last row (one row copied, not the cache). Each row draws exactly as
`sample_steps` draws for a batch of one, so a request gets the very tokens
`generate_batch(model, [prompt], sampling)` gives; rows with the same settings are drawn in one
call, each still with its own generator.

Overload: at most `max_batch` rows decode at once (a step over more rows would make every stream
slower than a reader can notice); up to `max_jobs` requests are held, the others wait in arrival
order; one more is refused at once with ServerBusyError (503 and Retry-After), so that the time to
the first token stays bounded instead of growing with the queue.

Beam search keeps several rows per request and reorders them, so it runs aside, outside the batch,
in a second thread (`run_aside`, which also serves one-off forward passes). Both threads only read
the model's weights, so they may share it. Jobs report through a callback called on the worker
thread (`Job.emit`); streaming.py hands what it gets over to the event loop.

Not handled: priorities, preemption, a memory budget other than the caps on rows and jobs.
"""

import ctypes
import ctypes.util
import dataclasses
import logging
import queue
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from ..confidence import confidence, token_logprobs
from ..errors import ServerBusyError
from ..generate import KVCacheDecoder, beam_search
from ..layers.activations import log_softmax
from ..sampling import Sampling, next_tokens

logger = logging.getLogger("scratchlm")

MAX_BATCH = 64  # rows decoded at once; more requests wait for a row
# Requests held at once (decoding, waiting or aside): as many wait as decode; more are refused.
MAX_JOBS = 2 * MAX_BATCH
PREFILL_TOKENS = 1024  # prompt tokens (padded) prefilled in one step: the others join next step
MAX_TOP_LOGPROBS = 20  # alternatives reported per token, as in the OpenAI API
TRIM_INTERVAL_S = 10.0  # how often the worker gives freed memory back (release_free_memory)


class Logprobs(NamedTuple):
    """A token's log-probability under the model (the log-softmax of its logits at temperature 1,
    before any sampling filter) and the `top` most likely tokens' (ids, log-probabilities)."""

    logprob: float
    top_ids: list[int]
    top_logprobs: list[float]


class Job:
    """One request: its prompt (token ids), its settings, and where its tokens go.

    emit(token, None, logprobs) is called for every new token (logprobs: a `Logprobs` with `top`
    alternatives when the job asks for them, else None) and emit(None, reason, None) once at the
    end, reason "stop" (the end-of-sequence token `eos_id`, which is not emitted; -1: never),
    "length" (max_new_tokens reached), "cancelled" or "error". Both on the worker thread.
    """

    def __init__(
        self,
        prompt: list[int],
        sampling: Sampling,
        emit: Callable,
        eos_id: int = -1,
        top: int | None = None,
    ):
        self.prompt, self.sampling, self.emit, self.eos_id = prompt, sampling, emit, eos_id
        self.top = top  # None: no log-probabilities; k: the chosen token's and k alternatives
        # How the next token is drawn, without the parts that differ between requests: rows with
        # equal draws are drawn together. Greedy needs no generator.
        self.draw = dataclasses.replace(sampling, max_new_tokens=0, seed=None, min_confidence=None)
        self.rng = np.random.default_rng(sampling.seed) if sampling.temperature > 0 else None
        self.generated = 0  # tokens emitted so far
        # With a min_confidence: the log-probabilities of its tokens, the end's included
        self.logprobs: list[float] | None = None if sampling.min_confidence is None else []
        self.cancelled = False
        self.finish_reason: str | None = None  # set once the job has ended

    def cancel(self) -> None:
        """From any thread: the job's row leaves the batch before the next step."""
        self.cancelled = True

    @property
    def confidence(self) -> float | None:
        """How sure the model is of the answer so far (confidence.py), with a min_confidence."""
        return None if self.logprobs is None else confidence(self.logprobs)


class RowGenerators:
    """Each row's own generator, seen by `next_tokens` as one: it draws one uniform number per row
    with random((B, 1)), and row b's number comes from row b's generator, as alone it would."""

    def __init__(self, generators):
        self.generators = generators

    def random(self, shape):
        assert shape == (len(self.generators), 1), shape
        return np.array([[g.random()] for g in self.generators])


class Engine:
    def __init__(self, model, max_jobs: int = MAX_JOBS, max_batch: int = MAX_BATCH):
        self.model = model
        self.max_jobs, self.max_batch = max_jobs, max_batch
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()  # new jobs; None stops the worker
        self.decoder = KVCacheDecoder(model, capacity=max_batch)
        self.rows: list[Job] = []  # the job of each decoder row
        self.waiting: deque[Job] = deque()  # submitted jobs without a row yet, oldest first
        self.logits = None  # (len(rows), V) each row's next-token logits
        self.finished = Counter()  # jobs ended, by reason
        self._held = 0  # jobs submitted and not yet ended, aside ones included
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._loop, name="scratchlm-engine", daemon=True)
        self._aside = ThreadPoolExecutor(1, thread_name_prefix="scratchlm-aside")

    # ------------------------------------------------------------------- the other threads' side

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self.inbox.put(None)
        self._worker.join()
        self._aside.shutdown(cancel_futures=True)

    def submit(self, *jobs: Job) -> None:
        """Queue jobs for the batch, all or none: ServerBusyError when they would make more than
        max_jobs held."""
        self._reserve(len(jobs))
        for job in jobs:
            self.inbox.put(job)

    def run_aside(self, fn, *args) -> Future:
        """fn(*args) on the aside thread (beam search, one-off forward passes) -> its Future."""
        self._reserve()
        future = self._aside.submit(fn, *args)
        future.add_done_callback(lambda _: self._release())
        return future

    def beam_search(self, prompt: list[int], sampling: Sampling, eos_id: int) -> Future:
        """The tokens beam search finds for `prompt`, as generate_batch gives them -> Future."""
        decoder = KVCacheDecoder(self.model)  # its own rows: the beams
        args = (decoder, prompt, sampling.beam, sampling.max_new_tokens, eos_id)
        return self.run_aside(beam_search, *args)

    def stats(self) -> dict:
        with self._lock:  # `finished` may be growing a new key on the worker thread
            finished = dict(self.finished)
        return {"running": len(self.rows), "held": self._held, "finished": finished}

    def _reserve(self, n: int = 1) -> None:
        with self._lock:
            if self._held + n > self.max_jobs:
                raise ServerBusyError(
                    f"the server holds {self._held} requests, its limit is {self.max_jobs}; "
                    "try again shortly"
                )
            self._held += n

    def _release(self, reason: str | None = None) -> None:
        """One job fewer held; a batch job's end is counted under its reason."""
        with self._lock:
            self._held -= 1
            if reason is not None:
                self.finished[reason] += 1

    # ------------------------------------------------------------------------- the worker thread

    def _loop(self) -> None:
        trimmed = time.monotonic()
        while (arrived := self._arrivals()) is not None:
            if time.monotonic() - trimmed > TRIM_INTERVAL_S:
                release_free_memory()
                trimmed = time.monotonic()
            try:
                self.step(arrived)
            except Exception:  # a bug must not kill the worker: end the batch's jobs, go on
                logger.exception("a decoding step failed; its requests end with an error")
                for job in [*self.rows, *self.waiting, *arrived]:
                    self._finish(job, "error")
                self.rows, self.logits, self.waiting = [], None, deque()
                self.decoder = KVCacheDecoder(self.model, capacity=self.max_batch)

    def _arrivals(self) -> list[Job] | None:
        """The jobs submitted since the last step, waiting for one while there is nothing to do;
        None once stop() was called."""
        jobs = [] if self.rows or self.waiting else [self.inbox.get()]
        while True:
            try:
                jobs.append(self.inbox.get_nowait())
            except queue.Empty:
                return None if None in jobs else jobs

    def step(self, arrived: list[Job]) -> None:
        """One turn of the worker: the arrived jobs join (or wait), every row gets its next token
        (tests drive the engine through this, without the thread)."""
        self.waiting.extend(arrived)
        keep = [not job.cancelled for job in self.rows]  # read once: other threads may cancel
        for job, kept in zip(self.rows, keep, strict=True):
            if not kept:
                self._finish(job, "cancelled")
        self._keep(keep)
        self._admit()
        if not self.rows:
            return
        tokens = self._draw()  # (B,), -1: finished
        order = self._keep(tokens >= 0)
        if self.rows:
            self.logits = self.decoder.advance(tokens[order])  # (B, V)

    def _admit(self) -> None:
        """Prefill waiting jobs' prompts as new rows after the running ones, oldest first, as long
        as rows are free and the step's prefill stays under PREFILL_TOKENS (at least one)."""
        for job in [j for j in self.waiting if j.cancelled or j.sampling.max_new_tokens == 0]:
            self.waiting.remove(job)
            self._finish(job, "cancelled" if job.cancelled else "length")
        new, longest = [], 0
        while self.waiting and len(self.rows) + len(new) < self.max_batch:
            longest = max(longest, min(len(self.waiting[0].prompt), self.decoder.max_seq_len))
            if new and (len(new) + 1) * longest > PREFILL_TOKENS:
                break
            new.append(self.waiting.popleft())
        if new:
            logits = self.decoder.add([job.prompt for job in new])  # (n, V)
            self.logits = logits if not self.rows else np.concatenate([self.logits, logits])
            self.rows += new

    def _draw(self) -> np.ndarray:
        """Every row's next token, drawn with its job's settings and generator, and reported ->
        the tokens (B,), -1 where the job has finished."""
        groups = defaultdict(list)  # rows with the same way of drawing: one call for all
        for b, job in enumerate(self.rows):
            groups[job.draw].append(b)
        tokens = np.empty(len(self.rows), dtype=np.intp)
        for draw, rows in groups.items():
            rng = None if draw.temperature == 0 else RowGenerators([self.rows[b].rng for b in rows])
            tokens[rows] = next_tokens(self.logits[rows], draw, rng)
        logprobs = self._logprobs(tokens)
        self._judge(tokens)
        for b, job in enumerate(self.rows):
            if tokens[b] == job.eos_id:
                self._finish(job, "stop")
                tokens[b] = -1
                continue
            job.emit(int(tokens[b]), None, logprobs.get(b))
            job.generated += 1
            if job.generated == job.sampling.max_new_tokens:
                self._finish(job, "length")
                tokens[b] = -1
        return tokens

    def _logprobs(self, tokens) -> dict[int, Logprobs]:
        """The drawn tokens' log-probabilities of the rows whose jobs ask for them -> row: them."""
        rows = [b for b, job in enumerate(self.rows) if job.top is not None]
        if not rows:
            return {}
        lp = log_softmax(self.logits[rows].astype(np.float64))  # (n, V)
        k = max(self.rows[b].top for b in rows)
        top = np.argsort(-lp, axis=1, kind="stable")[:, :k]  # (n, k), most likely first
        out = {}
        for i, b in enumerate(rows):
            ids = top[i, : self.rows[b].top]
            out[b] = Logprobs(float(lp[i, tokens[b]]), ids.tolist(), lp[i, ids].tolist())
        return out

    def _judge(self, tokens) -> None:
        """Add the drawn tokens' log-probabilities (end-of-sequence included) to the jobs that
        judge their answers by a min_confidence (confidence.py): the raw logits' log-softmax."""
        rows = [b for b, job in enumerate(self.rows) if job.logprobs is not None]
        if rows:
            for b, lp in zip(rows, token_logprobs(self.logits[rows], tokens[rows]), strict=True):
                self.rows[b].logprobs.append(float(lp))

    def _keep(self, keep) -> np.ndarray:
        """Keep the rows marked True (B booleans); the others leave the batch, the last rows moving
        into their places -> the old row of each row now (B',)."""
        keep = np.asarray(keep, dtype=bool)
        if keep.all():
            return np.arange(len(keep))
        n = int(keep.sum())
        order = np.arange(n)
        kept = np.flatnonzero(keep)
        order[np.flatnonzero(~keep[:n])] = kept[kept >= n]  # the holes take the last kept rows
        self.decoder.select(order)
        self.logits = self.logits[order]
        self.rows = [self.rows[r] for r in order]
        return order

    def _finish(self, job: Job, reason: str) -> None:
        """Report the job's end (once: a job that has ended is left alone)."""
        if job.finish_reason is not None:
            return
        job.finish_reason = reason
        self._release(reason)
        job.emit(None, reason, None)


def _malloc_trim():
    libc = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(libc), "malloc_trim", None) if libc else None


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Give back to the system the memory that freed arrays leave inside the C allocator's heaps
    (glibc's malloc_trim; elsewhere nothing). Every step allocates and frees arrays of many sizes
    (the batch and the context lengths change all the time), and glibc keeps the holes they leave:
    a server's resident memory would creep up over hours. Trimming takes well under a millisecond."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
