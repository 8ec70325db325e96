"""Continuous batching: one worker thread owns the model and decodes every request in ONE batch.

A request is a `Job` on token ids: this file knows no text, chat template or HTTP (app.py does).
The worker repeats:

    1. drop the rows of cancelled jobs (their client went away, or a stop string was found);
    2. admit the jobs that arrived since the last step: one forward pass over their prompts fills
       their key/value cache rows (prefill) and gives their first next-token logits;
    3. draw each row's next token with ITS OWN settings and random generator, and report it;
    4. drop the rows that finished (end-of-sequence token, or max_new_tokens reached);
    5. one forward pass over the new token of every remaining row (a decode step), and again.

So a request joins the running batch at the next step and leaves it as soon as it finishes; no
request waits for another to finish. The decoder is generate.py's `KVCacheDecoder`, whose rows may
hold contexts of different lengths, and each row draws exactly as `sample_steps` draws for a batch
of one, so a request gets the very tokens `generate_batch(model, [prompt], sampling)` gives.

Beam search keeps several rows per request and reorders them, so it runs aside, outside the batch,
in a second thread (`run_aside`, which also serves one-off forward passes). Both threads only read
the model's weights, so they may share it. Jobs report through a callback called on the worker
thread (`Job.emit`); app.py hands what it gets over to its event loop.

Not handled: priorities, preemption, a memory budget other than the cap on the jobs held.
"""

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..errors import ServerBusyError
from ..generate import KVCacheDecoder, beam_search
from ..sampling import Sampling, next_tokens

logger = logging.getLogger("scratchlm")

MAX_JOBS = 256  # requests held at once (running, waiting or aside); more get ServerBusyError


class Job:
    """One request: its prompt (token ids), its settings, and where its tokens go.

    emit(token, None) is called for every new token and emit(None, reason) once at the end, reason
    "stop" (the end-of-sequence token `eos_id`, which is not emitted; -1: never), "length"
    (max_new_tokens reached), "cancelled" or "error". Both are called on the worker thread.
    """

    def __init__(self, prompt: list[int], sampling: Sampling, emit: Callable, eos_id: int = -1):
        self.prompt, self.sampling, self.emit, self.eos_id = prompt, sampling, emit, eos_id
        self.rng = np.random.default_rng(sampling.seed)  # this request's own draws
        self.generated = 0  # tokens emitted so far
        self.cancelled = False
        self.finish_reason: str | None = None  # set once the job has ended

    def cancel(self) -> None:
        """From any thread: the job's row leaves the batch before the next step."""
        self.cancelled = True


class Engine:
    def __init__(self, model, max_jobs: int = MAX_JOBS):
        self.model = model
        self.max_jobs = max_jobs
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()  # new jobs; None stops the worker
        self.decoder = KVCacheDecoder(model)
        self.rows: list[Job] = []  # the job of each decoder row
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

    def submit(self, job: Job) -> None:
        """Queue a job for the batch; ServerBusyError when max_jobs are held already."""
        self._reserve()
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

    def _reserve(self) -> None:
        with self._lock:
            if self._held >= self.max_jobs:
                raise ServerBusyError(
                    f"the server holds {self._held} requests, its limit; try again shortly"
                )
            self._held += 1

    def _release(self, reason: str | None = None) -> None:
        """One job fewer held; a batch job's end is counted under its reason."""
        with self._lock:
            self._held -= 1
            if reason is not None:
                self.finished[reason] += 1

    # ------------------------------------------------------------------------- the worker thread

    def _loop(self) -> None:
        while (arrived := self._arrivals()) is not None:
            try:
                self.step(arrived)
            except Exception:  # a bug must not kill the worker: end the batch's jobs, go on
                logger.exception("a decoding step failed; its requests end with an error")
                for job in self.rows + arrived:
                    self._finish(job, "error")
                self.decoder, self.rows, self.logits = KVCacheDecoder(self.model), [], None

    def _arrivals(self) -> list[Job] | None:
        """The jobs submitted since the last step, waiting for one while the batch is empty;
        None once stop() was called."""
        jobs = [] if self.rows else [self.inbox.get()]
        while True:
            try:
                jobs.append(self.inbox.get_nowait())
            except queue.Empty:
                return None if None in jobs else jobs

    def step(self, arrived: list[Job]) -> None:
        """One turn of the worker: the arrived jobs join, every row gets its next token (tests
        drive the engine through this, without the thread)."""
        keep = [not job.cancelled for job in self.rows]  # read once: other threads may cancel
        for job, kept in zip(self.rows, keep, strict=True):
            if not kept:
                self._finish(job, "cancelled")
        self._keep(keep)
        self._admit(arrived)
        if not self.rows:
            return
        rows = zip(self.rows, self.logits, strict=True)
        tokens = np.array([self._draw(job, logits) for job, logits in rows])  # (B,), -1: finished
        going = tokens >= 0
        self._keep(going)
        if self.rows:
            self.logits = self.decoder.advance(tokens[going])  # (B, V)

    def _admit(self, arrived: list[Job]) -> None:
        """Prefill the arrived jobs' prompts as new rows after the running ones."""
        new = []
        for job in arrived:
            if job.cancelled:
                self._finish(job, "cancelled")
            elif job.sampling.max_new_tokens == 0:
                self._finish(job, "length")
            else:
                new.append(job)
        if new:
            logits = self.decoder.add([job.prompt for job in new])  # (n, V)
            self.logits = logits if not self.rows else np.concatenate([self.logits, logits])
            self.rows += new

    def _draw(self, job: Job, logits) -> int:
        """Draw the job's next token from its logits (V,) and report it -> the token, or -1 when
        the job has finished."""
        # A batch of one, as sample_steps draws it: the same random numbers as generate_batch.
        token = int(next_tokens(logits[None], job.sampling, job.rng)[0])
        if token == job.eos_id:
            self._finish(job, "stop")
            return -1
        job.emit(token, None)
        job.generated += 1
        if job.generated == job.sampling.max_new_tokens:
            self._finish(job, "length")
            return -1
        return token

    def _keep(self, keep) -> None:
        """Keep the rows marked True (a list or array of B booleans); the others leave the batch."""
        if all(keep):
            return
        rows = np.flatnonzero(keep)
        self.decoder.select(rows)
        self.logits = self.logits[rows]
        self.rows = [self.rows[r] for r in rows]

    def _finish(self, job: Job, reason: str) -> None:
        """Report the job's end (once: a job that has ended is left alone)."""
        if job.finish_reason is not None:
            return
        job.finish_reason = reason
        self._release(reason)
        job.emit(None, reason)
