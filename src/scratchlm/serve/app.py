"""The HTTP side of `scratchlm serve`: OpenAI-compatible routes on FastAPI, and the chat page.

    GET  /                      the chat page (static/chat.html)
    GET  /health                {"status": "ok", ...} with the engine's counters
    GET  /v1/models             the one model served
    POST /v1/chat/completions   messages -> the training chat template (chat_format.py) -> a reply
    POST /v1/completions        a plain prompt, continued as it is (as `scratchlm generate` does)
    POST /v1/inspect            (ours) depths, attention and CoPE positions of one forward pass

Text lives here, never in the engine: messages are rendered with the chat template and tokenized,
the engine (engine.py) sends tokens back, and they become text as soon as it is final
(chat.TextStream), cut before the first stop string. `stream: true` answers with server-sent events
ending in `data: [DONE]`. A client that goes away cancels its request: its row leaves the batch at
the next step.

Every error has the OpenAI shape {"error": {"message", "type", "param", "code"}} and its HTTP
status: 400 for a malformed or out-of-range request, 401 for a missing or wrong API key, 404 for an
unknown model or route, 413 for a body over MAX_BODY_BYTES, 503 when the engine holds MAX_JOBS
requests. docs/serve.md is the user's guide (fields, extensions, limits).

Not handled: n > 1, logprobs, tools, system messages (the model was not trained with them), more
than one model per server, TLS.
"""

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from .. import chat_format
from ..chat import MAX_PROMPT_CHARS, TextStream
from ..errors import InputError, RequestError, ServerBusyError
from ..look_inside import look_inside
from ..sampling import Sampling
from .engine import Engine, Job

logger = logging.getLogger("scratchlm")

MAX_BODY_BYTES = 256 * 1024  # a prompt is at most 10,000 characters: this leaves room for JSON
MAX_TOKENS = 1024  # the largest max_tokens a request may ask for
MAX_STOPS = 4  # stop strings per request, as in the OpenAI API
FLUSH_INTERVAL_S = 0.01  # the least time between two deliveries of tokens (Mailbox)
DEFAULT_MAX_TOKENS = Sampling().max_new_tokens

# ------------------------------------------------------------------------------ request bodies


class Body(BaseModel):
    # Strict: "5" is not a number, true is not 1. Unknown fields (user, presence_penalty, ...) are
    # ignored, as many OpenAI clients send some.
    model_config = ConfigDict(strict=True, extra="ignore")


class Message(Body):
    role: Literal["user", "assistant"]
    content: str


class StreamOptions(Body):
    include_usage: bool = False


class CompletionFields(Body):
    """What both completion routes accept; `top_k`, `beam` and `ignore_eos` are our extensions."""

    model: str
    max_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS)] | None = None
    temperature: float | None = None  # default 0: greedy, as everywhere in scratchlm
    top_p: float | None = None
    top_k: int | None = None
    beam: int = 1
    seed: int | None = None
    stop: Any = None  # a string or a list of up to MAX_STOPS strings (checked in `stop_strings`)
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False  # go on after the end-of-sequence token (benchmarks)


class ChatRequest(CompletionFields):
    messages: Annotated[list[Message], Field(min_length=1)]


class CompletionRequest(CompletionFields):
    prompt: str


class InspectRequest(Body):
    model: str
    messages: Annotated[list[Message], Field(min_length=1)]  # may end with the assistant's reply
    step: Annotated[int, Field(ge=0)] = 0
    head: Annotated[int, Field(ge=0)] = 0


async def read_body(request: Request, schema: type[Body]) -> Body:
    """The request's JSON body checked against `schema`, read no further than MAX_BODY_BYTES."""
    too_large = RequestError(
        f"the request body is over the limit of {MAX_BODY_BYTES:,} bytes", 413, code="too_large"
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    try:
        return schema.model_validate_json(bytes(body))
    except ValidationError as e:
        raise _validation_error(e) from None


def _validation_error(e: ValidationError) -> RequestError:
    """The first problem pydantic found, as a message that names the field (`param`)."""
    error = e.errors()[0]
    if error["type"] == "json_invalid":
        return RequestError(f"the body is not valid JSON: {error['msg']}", code="invalid_json")
    if not error["loc"]:
        return RequestError("the body must be a JSON object")
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])[1:]
    got = "" if error["type"] == "missing" else f" (got {json.dumps(error['input'])[:50]})"
    return RequestError(f"{param}: {error['msg']}{got}", param=param)


def sampling_of(body: CompletionFields) -> Sampling:
    """The request's decoding settings, checked by `Sampling` itself (the one place for it)."""
    if body.n != 1:
        raise RequestError(f"n must be 1 (one answer per request), got {body.n}", param="n")
    max_tokens = DEFAULT_MAX_TOKENS if body.max_tokens is None else body.max_tokens
    try:
        return Sampling(
            max_tokens, body.temperature or 0.0, body.top_k, body.top_p, body.beam, body.seed
        )
    except InputError as e:  # its messages start with the field's name
        field = str(e).split()[0]
        raise RequestError(
            str(e), param=field if field in type(body).model_fields else None
        ) from None


def stop_strings(stop) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(stops, list)
        or not 1 <= len(stops) <= MAX_STOPS
        or not all(isinstance(s, str) and s for s in stops)
    ):
        raise RequestError(
            f"stop must be a non-empty string or a list of 1 to {MAX_STOPS} of them, got "
            f"{json.dumps(stop)[:50]}",
            param="stop",
        )
    return stops


# ------------------------------------------------------------------------------ text out


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


# ------------------------------------------------------------------------------ engine events


class Mailbox:
    """Hands the engine's (token, reason) events from its thread to the event loop.

    Waking the loop costs a system call and a turn of the loop, and every chunk it then sends costs
    another system call, all while holding Python's lock, which the engine needs too. So the loop is
    woken ONCE for all the events that arrive before it runs, and at most once every `interval`
    seconds: the tokens a request gets in between go out as one chunk (at most 1 / interval chunks a
    second, still a smooth stream to a reader). Measured with 16 streaming clients of the demo
    model: one wake-up per step instead of one per token took them from 3x to 4x the tokens/s of
    one-at-a-time requests; the 10 ms interval raised both, from about 6,000 and 1,550 tokens/s to
    about 9,000 and 2,100, for a few milliseconds more before the first words.
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


async def text_pieces(events, answer: "Answer"):
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


# ------------------------------------------------------------------------------ responses


@dataclass(frozen=True)
class Route:
    """What differs between the chat and the plain completion responses."""

    object: str  # of a whole response
    chunk_object: str  # of a streamed chunk
    id_prefix: str
    chat: bool

    def choice(self, text: str | None, reason: str | None, chunk: bool) -> dict:
        """A choice; in a chat chunk, text None announces the role and "" carries no delta."""
        if not self.chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": reason}
        if not chunk:
            message = {"role": "assistant", "content": text}
            return {"index": 0, "message": message, "finish_reason": reason}
        delta = {"role": "assistant", "content": ""} if text is None else {"content": text}
        return {"index": 0, "delta": delta if text != "" else {}, "finish_reason": reason}


CHAT = Route("chat.completion", "chat.completion.chunk", "chatcmpl", chat=True)
TEXT = Route("text_completion", "text_completion", "cmpl", chat=False)


@dataclass
class Reply:
    """The response bodies of one answer: whole, or as server-sent events."""

    route: Route
    model: str
    prompt_tokens: int
    answer: Answer

    def __post_init__(self):
        self.id = f"{self.route.id_prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def whole(self) -> dict:
        answer = self.answer
        choice = self.route.choice(answer.text, answer.finish_reason, chunk=False)
        return {**self._head(self.route.object), "choices": [choice], "usage": self.usage()}

    async def events(self, pieces, include_usage: bool):
        """The server-sent events of a stream of text pieces, ending in `data: [DONE]`."""
        if self.route.chat:
            yield self._chunk(None)
        async for piece in pieces:
            yield self._chunk(piece)
        if self.answer.finish_reason == "error":
            yield sse(error_body("the engine failed while generating this answer", "server_error"))
            return
        yield self._chunk("", self.answer.finish_reason)
        if include_usage:
            yield sse({**self._head(self.route.chunk_object), "choices": [], "usage": self.usage()})
        yield "data: [DONE]\n\n"

    def usage(self) -> dict:
        n = self.answer.tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": n,
            "total_tokens": self.prompt_tokens + n,
        }

    def _chunk(self, text: str | None, reason: str | None = None) -> str:
        choice = self.route.choice(text, reason, chunk=True)
        return sse({**self._head(self.route.chunk_object), "choices": [choice]})

    def _head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def error_body(message: str, kind="invalid_request_error", param=None, code=None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def install_error_handlers(app: FastAPI) -> None:
    """Every error in the OpenAI shape with its status; nothing a request does stops the server."""

    @app.exception_handler(RequestError)
    async def refused(request, e: RequestError):
        return JSONResponse(error_body(str(e), param=e.param, code=e.code), e.status)

    @app.exception_handler(ServerBusyError)
    async def busy(request, e: ServerBusyError):
        return JSONResponse(error_body(str(e), "server_error", code="server_busy"), 503)

    @app.exception_handler(HTTPException)
    async def http_error(request, e: HTTPException):  # unknown route, wrong method
        message = f"{request.method} {request.url.path}: {e.detail}"
        return JSONResponse(error_body(message), e.status_code, headers=e.headers)

    @app.exception_handler(Exception)
    async def crashed(request, e: Exception):  # a bug: the request fails, the server goes on
        logger.error("%s %s failed: %r", request.method, request.url.path, e)
        return JSONResponse(error_body(f"internal error: {e}", "server_error"), 500)


# ------------------------------------------------------------------------------ the app


def create_app(model, name: str, api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving `model` under the id `name`; with `api_key`, every /v1 route needs
    the header `Authorization: Bearer <api_key>`. Its engine starts and stops with the app."""
    if model.tokenizer is None:
        raise InputError("this model has no tokenizer, so it cannot read or write text")
    tok, window = model.tokenizer, model.config.max_seq_len
    engine = Engine(model)
    page = (files("scratchlm") / "serve" / "static" / "chat.html").read_text(encoding="utf-8")
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app):
        app.state.mailbox = Mailbox(asyncio.get_running_loop(), FLUSH_INTERVAL_S)
        engine.start()
        yield
        engine.stop()

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            key.strip().encode(), api_key.encode()
        ):
            raise RequestError(
                "missing or wrong API key: send the header `Authorization: Bearer <key>`",
                401,
                code="invalid_api_key",
            )

    app = FastAPI(title="scratchlm", lifespan=lifespan)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(check_key)])

    def check_model(requested: str) -> None:
        if requested != name:
            raise RequestError(
                f"model {requested!r} is not served here; this server serves {name!r}",
                404,
                param="model",
                code="model_not_found",
            )

    def encode(text: str, param: str) -> list[int]:
        """The prompt's token ids, refused when empty or over the character or token limit."""
        if not text.strip():
            raise RequestError(f"{param} is empty", param=param)
        if len(text) > MAX_PROMPT_CHARS:
            raise RequestError(
                f"{param} has {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}",
                param=param,
                code="context_length_exceeded",
            )
        ids = tok.encode(text)
        if len(ids) > window:
            raise RequestError(
                f"{param} has {len(ids)} tokens; the model's context window is {window}",
                param=param,
                code="context_length_exceeded",
            )
        return ids

    def generation(request: Request, body: CompletionFields, ids: list[int]):
        """Start generating now (so that a busy engine or a bad setting fails the request before
        any answer is sent) -> the (token, reason) events to come."""
        sampling = sampling_of(body)
        eos_id = -1 if body.ignore_eos else tok.eos_id
        if sampling.beam > 1:
            if body.stream:
                raise RequestError(
                    "beam search cannot stream: its answer is known only at the end", param="stream"
                )
            search = engine.beam_search(ids, sampling, eos_id)
            return beam_events(search, sampling.max_new_tokens)
        events: asyncio.Queue = asyncio.Queue()
        emit = lambda *event: request.app.state.mailbox.put(events, event)  # noqa: E731
        job = Job(ids, sampling, emit, eos_id)
        engine.submit(job)
        return job_events(request, job, events)

    async def complete(request: Request, body: CompletionFields, ids: list[int], route: Route):
        stops = stop_strings(body.stop)
        events = generation(request, body, ids)
        reply = Reply(route, name, len(ids), Answer(tok, stops, strip_start=route.chat))
        pieces = text_pieces(events, reply.answer)
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return StreamingResponse(
                reply.events(pieces, include_usage), media_type="text/event-stream"
            )
        async for _ in pieces:
            pass
        if reply.answer.finish_reason == "error":
            raise RuntimeError("the engine failed while generating this answer")
        return reply.whole()

    # ---------------------------------------------------------------------------- routes

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def chat_page():
        return page

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": name, **engine.stats()}

    @v1.get("/models")
    async def models():
        card = {"id": name, "object": "model", "created": created, "owned_by": "scratchlm"}
        return {"object": "list", "data": [card]}

    @v1.post("/chat/completions")
    async def chat_completions(request: Request):
        body = await read_body(request, ChatRequest)
        check_model(body.model)
        if body.messages[-1].role != "user":
            raise RequestError("the last message must be the user's", param="messages")
        text = chat_format.reply_prompt([(m.role, m.content) for m in body.messages])
        return await complete(request, body, encode(text, "messages"), CHAT)

    @v1.post("/completions")
    async def completions(request: Request):
        body = await read_body(request, CompletionRequest)
        check_model(body.model)
        return await complete(request, body, encode(body.prompt, "prompt"), TEXT)

    @v1.post("/inspect")
    async def inspect(request: Request):
        body = await read_body(request, InspectRequest)
        check_model(body.model)
        messages = [(m.role, m.content) for m in body.messages]
        full = tok.encode(chat_format.render(messages))
        ids = full[-window:]  # the most recent window, as the decoder sees it
        reply = messages[-1][0] == "assistant"
        start = len(tok.encode(chat_format.reply_prompt(messages[:-1]))) if reply else len(full)
        try:
            inside = await asyncio.wrap_future(
                engine.run_aside(look_inside, model, ids, body.step, body.head)
            )
        except InputError as e:  # a step or head out of range: the message starts with its name
            raise RequestError(str(e), param=str(e).split()[0]) from None
        return {
            "model": name,
            "tokens": [tok.decode([i], skip_special=False) for i in ids],
            "answer_start": max(0, start - (len(full) - len(ids))),
            "adaptive_depth": model.config.adaptive_depth,
            "heads": model.config.n_heads,
            "cope_max_pos": model.config.cope_max_pos,
            "step": body.step,
            "head": body.head,
            "steps": inside["steps"],
            "depth": inside["depth"].tolist(),
            "running": inside["running"].tolist(),
            "attention": inside["attention"].astype(float).round(4).tolist(),
            "positions": inside["positions"].astype(float).round(3).tolist(),
        }

    app.include_router(v1)
    install_error_handlers(app)
    return app
