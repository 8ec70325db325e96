"""From the engine's tokens to the text a client reads, as it is made.

- `Mailbox` hands the engine's (token, reason) events from its thread over to the event loop;
- `job_events` / `beam_events` give a request's events in lists (a job is cancelled when its
  client goes away);
- `Answer` turns tokens into final text (chat.TextStream), cut before the first stop string, and
  `text_pieces` gives that text piece by piece.
"""

import asyncio
import threading
import time
from concurrent.futures import Future
from contextlib import aclosing

from fastapi import Request

from ..chat import TextStream
from .engine import Job

FLUSH_INTERVAL_S = 0.01  # the least time between two deliveries of tokens (Mailbox)


class Answer:
    """An answer as the engine makes it: tokens in, final text out (chat.TextStream), cut before
    the first stop string. Text that may be the start of a stop string is held back until the next
    tokens tell; `strip_start` drops the space the chat template leaves before a reply."""

    def __init__(self, tokenizer, stops: list[str], strip_start: bool):
        self.stream = TextStream(tokenizer)
        self.stops, self.strip_start = stops, strip_start
        self.text = ""  # the final text so far
        self.sent = 0  # how much of it has been given out
        self.tokens = 0  # tokens received
        self.finish_reason: str | None = None

    def add(self, token: int | None, reason: str | None) -> str:
        """One event of the job (a token, or the end and its reason) -> the text now final."""
        if self.finish_reason is not None:  # cut by a stop string: the rest is not wanted
            return ""
        if token is None:
            self.text += self.stream.flush()
            self.finish_reason = reason
        else:
            self.tokens += 1
            self.text += self.stream.push(token)
        if self.strip_start and self.sent == 0:
            self.text = self.text.lstrip()
        cut = min((k for s in self.stops if (k := self.text.find(s)) >= 0), default=-1)
        if cut >= 0:
            self.text, self.finish_reason = self.text[:cut], "stop"
        end = len(self.text) if self.finish_reason else len(self.text) - self._stop_prefix()
        piece = self.text[self.sent : max(end, self.sent)]
        self.sent += len(piece)
        return piece

    def _stop_prefix(self) -> int:
        """The length of the longest end of the text that begins a stop string."""
        ends = (n for s in self.stops for n in range(1, len(s)) if self.text.endswith(s[:n]))
        return max(ends, default=0)


class Mailbox:
    """Hands the engine's (token, reason) events from its thread to the event loop.

    Waking the loop costs a system call and a turn of the loop, and every chunk it then sends costs
    another system call, all while holding Python's lock, which the engine needs too. So the loop is
    woken ONCE for all the events that arrive before it runs, and at most once every `interval`
    seconds: the tokens a request gets in between go out as one chunk (at most 1 / interval chunks a
    second, still a smooth stream to a reader). One wake-up per step instead of one per token, and
    then a few tokens per chunk, each raised the throughput of many streaming clients markedly
    (docs/serve.md), for a few milliseconds more before the first words.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.0):
        self.loop, self.interval = loop, interval
        self.pending: list[tuple[asyncio.Queue, tuple]] = []  # (a request's queue, its event)
        self.lock = threading.Lock()
        self.last = 0.0  # when the loop last took the events (time.monotonic)

    def put(self, queue: asyncio.Queue, event: tuple) -> None:
        """From any thread: `event` goes into `queue` within `interval` seconds."""
        with self.lock:
            self.pending.append((queue, event))
            wake = len(self.pending) == 1  # else a wake-up is on its way already
        if wake:
            self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        wait = self.last + self.interval - time.monotonic()
        if wait > 0:
            self.loop.call_later(wait, self._deliver)
        else:
            self._deliver()

    def _deliver(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
        self.last = time.monotonic()
        for queue, event in pending:
            queue.put_nowait(event)


async def job_events(request: Request, job: Job, events: asyncio.Queue):
    """A batch job's (token, reason) events, in lists of all those that have arrived: one when
    the server keeps up, several when it lags behind (then they go out as one chunk, which costs
    less than one each). The last event has the reason. The job is cancelled when the iteration
    stops early or the client goes away."""
    watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
    try:
        while True:
            arrived = [await events.get()]
            while not events.empty():
                arrived.append(events.get_nowait())
            yield arrived
            if arrived[-1][1] is not None:
                return
    finally:
        job.cancel()
        watcher.cancel()


async def _cancel_on_disconnect(request: Request, job: Job) -> None:
    # The body has been read: the next message the server receives is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
    job.cancel()


async def beam_events(search: Future, max_new_tokens: int):
    """The events of a beam search running aside: all of them at once, when it has finished."""
    tokens = await asyncio.wrap_future(search)
    reason = "length" if len(tokens) == max_new_tokens else "stop"
    yield [(token, None) for token in tokens] + [(None, reason)]


async def text_pieces(events, answer: Answer):
    """The answer's new text after each list of events, until its end or a stop string."""
    async with aclosing(events):
        async for arrived in events:
            piece = ""
            for token, reason in arrived:
                piece += answer.add(token, reason)
                if answer.finish_reason is not None:
                    break
            if piece:
                yield piece
            if answer.finish_reason is not None:
                return
