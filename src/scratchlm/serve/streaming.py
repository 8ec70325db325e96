"""From the engine's tokens to the text a client reads, as it is made.

- `Mailbox` hands the engine's events from its thread over to the event loop;
- `job_events` / `beam_events` give a request's events, (choice, token, reason, logprobs), in
  lists of all those that have arrived (the jobs are cancelled when the client goes away);
- `Answer` turns one choice's tokens into final text (prompts.TextStream), cut before the first stop
  string, and keeps its tokens' log-probabilities;
- `answer_updates` feeds the events to the answers and says which have news.
"""

import asyncio
import logging
import threading
import time
from concurrent.futures import Future
from contextlib import aclosing

from fastapi import Request

from ..confidence import DONT_KNOW
from ..prompts import TextStream
from .engine import Job, Logprobs

logger = logging.getLogger("scratchlm")

FLUSH_INTERVAL_S = 0.01  # the least time between two deliveries of tokens (Mailbox)


class Answer:
    """An answer as the engine makes it: tokens in, final text out (prompts.TextStream), cut
    before the first stop string. Text that may be the start of a stop string is held back until
    the next tokens tell; `strip_start` drops the space the chat template leaves before a reply.
    With `logprobs`, each token counted (`tokens`) keeps its (id, `Logprobs`) in `logprobs`. With
    a `min_confidence`, the answer is judged whole: nothing goes out before its end, and then
    either it, or "I don't know" (`withheld`) when the job's `confidence` is below it."""

    def __init__(
        self,
        tokenizer,
        stops: list[str],
        strip_start: bool,
        logprobs: bool = False,
        min_confidence: float | None = None,
    ):
        self.tokenizer = tokenizer
        self.min_confidence = min_confidence
        self.confidence: float | None = None  # the job's, set at its end (answer_updates)
        self.withheld = False
        self.stream = TextStream(tokenizer)
        self.stops, self.strip_start = stops, strip_start
        self.text = ""  # the final text so far
        self.sent = 0  # how much of it has been given out
        self.tokens = 0  # tokens received
        self.finish_reason: str | None = None
        self.logprobs: list[tuple[int, Logprobs, int]] | None = [] if logprobs else None
        self.logprobs_sent = 0  # how many of them have been given out (`take_logprobs`)

    def add(self, token: int | None, reason: str | None, logprobs: Logprobs | None = None) -> str:
        """One event of the job (a token, or the end and its reason) -> the text now final."""
        if self.finish_reason is not None:  # cut by a stop string: the rest is not wanted
            return ""
        if token is None:
            self.text += self.stream.flush()
            self.finish_reason = reason
        else:
            self.tokens += 1
            start = len(self.stream.text)
            self.text += self.stream.push(token)
            if self.logprobs is not None:
                added = self.stream.text[start:]  # the token's text, after a space or not
                offset = start + len(added) - len(added.lstrip())
                self.logprobs.append((token, logprobs, offset))
        if self.strip_start and self.sent == 0:
            self.text = self.text.lstrip()
        cut = min((k for s in self.stops if (k := self.text.find(s)) >= 0), default=-1)
        if cut >= 0:
            self.text, self.finish_reason = self.text[:cut], "stop"
        if self.min_confidence is not None:
            if self.finish_reason is None:
                return ""  # judged whole: held back until the end
            if self.confidence is not None and self.confidence < self.min_confidence:
                self.text, self.withheld = DONT_KNOW, True
        end = len(self.text) if self.finish_reason else len(self.text) - self._stop_prefix()
        piece = self.text[self.sent : max(end, self.sent)]
        self.sent += len(piece)
        return piece

    def take_logprobs(self) -> list[tuple[int, Logprobs, int]]:
        """The log-probabilities of the tokens received since the last call (none for the text
        held back until a judged answer's end, and none for an answer withheld)."""
        held = self.min_confidence is not None and self.finish_reason is None
        if self.logprobs is None or self.withheld or held:
            return []
        taken = self.logprobs[self.logprobs_sent :]
        self.logprobs_sent = len(self.logprobs)
        return taken

    def _stop_prefix(self) -> int:
        """The length of the longest end of the text that begins a stop string."""
        ends = (n for s in self.stops for n in range(1, len(s)) if self.text.endswith(s[:n]))
        return max(ends, default=0)


class Mailbox:
    """Hands the engine's events from its thread to the event loop.

    Waking the loop costs a system call and a turn of the loop, and every chunk it then sends costs
    another system call, all while holding Python's lock, which the engine needs too. So the loop is
    woken ONCE for all the events that arrive before it runs, and at most once every `interval`
    seconds: the tokens a request gets in between go out as one chunk (at most 1 / interval chunks a
    second, still a smooth stream to a reader). An `urgent` event (a request's first token, or its
    end) does not wait for the interval: it goes out at the loop's next turn, with all the others.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.0):
        self.loop, self.interval = loop, interval
        self.pending: list[tuple[asyncio.Queue, tuple]] = []  # (a request's queue, its event)
        self.lock = threading.Lock()
        self.last = 0.0  # when the loop last took the events (time.monotonic)
        self.woken = False  # a delivery at the loop's next turn is on its way

    def put(self, queue: asyncio.Queue, event: tuple, urgent: bool = False) -> None:
        """From any thread: `event` goes into `queue` within `interval` seconds (urgent: at once)."""
        with self.lock:
            self.pending.append((queue, event))
            first = len(self.pending) == 1  # else a wake-up is on its way already
            now = urgent and not self.woken
            self.woken |= now
        if now:
            self.loop.call_soon_threadsafe(self._deliver)
        elif first:
            self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        wait = self.last + self.interval - time.monotonic()
        if wait > 0:
            self.loop.call_later(wait, self._deliver)
        else:
            self._deliver()

    def _deliver(self) -> None:
        with self.lock:
            pending, self.pending, self.woken = self.pending, [], False
        if not pending:  # an urgent delivery took them already
            return
        self.last = time.monotonic()
        for queue, event in pending:
            queue.put_nowait(event)


class Emitter:
    """A job's emit callback: its events, tagged with its choice, into `events` via `mailbox`.
    They are urgent (Mailbox) until the answer's first text is out, which may take more than one
    token (text becomes final only when the next token confirms it), and at the end; in between
    they wait for the interval. `answer_updates` says when the first text is out (`eager`)."""

    def __init__(self, mailbox: Mailbox, events: asyncio.Queue, choice: int):
        self.mailbox, self.events, self.choice = mailbox, events, choice
        self.eager = True

    def __call__(self, token, reason, logprobs) -> None:
        event = (self.choice, token, reason, logprobs)
        self.mailbox.put(self.events, event, urgent=self.eager or reason is not None)


async def job_events(request: Request, jobs: list[Job], events: asyncio.Queue):
    """The batch jobs' events, in lists of all those that have arrived: one per job when the
    server keeps up, several when it lags behind (then they go out as one chunk, which costs less
    than one each), until every job has ended. The jobs are cancelled when the iteration stops
    early or the client goes away."""
    watcher = asyncio.create_task(_cancel_on_disconnect(request, jobs))
    try:
        running = len(jobs)
        while running:
            arrived = [await events.get()]
            while not events.empty():
                arrived.append(events.get_nowait())
            running -= sum(reason is not None for _, _, reason, _ in arrived)
            yield arrived
    finally:
        for job in jobs:
            job.cancel()
        watcher.cancel()


async def _cancel_on_disconnect(request: Request, jobs: list[Job]) -> None:
    # The body has been read: the next message the server receives is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
    if any(job.finish_reason is None for job in jobs):
        logger.info("%s: the client went away; its request is cancelled", request.url.path)
    for job in jobs:
        job.cancel()


async def beam_events(search: Future, max_new_tokens: int):
    """The events of a beam search running aside: all of them at once, when it has finished."""
    tokens = await asyncio.wrap_future(search)
    reason = "length" if len(tokens) == max_new_tokens else "stop"
    yield [(0, token, None, None) for token in tokens] + [(0, None, reason, None)]


async def answer_updates(events, answers: list[Answer], jobs: list[Job]):
    """Feed the events to their answers -> after each list of them, the (choice, new text) of
    every answer with news (text, or its end), until all have ended. An answer cut by a stop string
    has its job (if any) cancelled at once: its row is free at the next step. `jobs` (none for
    beam search) emit through `Emitter`s."""
    async with aclosing(events):
        async for arrived in events:
            news: dict[int, str] = {}
            for choice, token, reason, logprobs in arrived:
                answer = answers[choice]
                if jobs and (reason is not None or answer.finish_reason is None):
                    answer.confidence = jobs[choice].confidence  # read before it is judged
                if answer.finish_reason is None:
                    news[choice] = news.get(choice, "") + answer.add(token, reason, logprobs)
                    if answer.finish_reason == "stop" and reason is None and jobs:
                        jobs[choice].cancel()
            news = {c: piece for c, piece in news.items() if piece or answers[c].finish_reason}
            for choice in news:
                if jobs:  # text is out: the next tokens may wait for the interval
                    jobs[choice].emit.eager = False
            if news:
                yield sorted(news.items())
            if all(answer.finish_reason is not None for answer in answers):
                return
