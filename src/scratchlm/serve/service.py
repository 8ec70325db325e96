"""The served model behind the routes: a checked request in, its answer out.

`Service` owns the engine and the tokenizer. It checks what the schemas cannot (the model's name,
the API key, the prompt against the model's limits), renders chat messages with the training chat
template (chat_format.py), starts the generation and shapes the answer as a `Reply`, whole or
streamed. Text lives here and in streaming.py, never in the engine (engine.py), which knows token
ids only.
"""

import asyncio
import hmac

from fastapi import Request
from fastapi.responses import StreamingResponse

from .. import chat_format
from ..chat import MAX_PROMPT_CHARS
from ..errors import InputError, RequestError
from ..look_inside import conversation_inside
from .engine import Engine, Job
from .responses import CHAT, TEXT, Reply, Route
from .schemas import (
    ChatRequest,
    CompletionFields,
    CompletionRequest,
    InspectRequest,
    sampling_of,
    stop_strings,
)
from .streaming import Answer, beam_events, job_events, text_pieces


class Service:
    """`model` served under the id `name`; with `api_key`, the /v1 routes need it."""

    def __init__(self, model, name: str, api_key: str | None = None):
        if model.tokenizer is None:
            raise InputError("this model has no tokenizer, so it cannot read or write text")
        self.model, self.name, self.api_key = model, name, api_key
        self.tok, self.window = model.tokenizer, model.config.max_seq_len
        self.engine = Engine(model)
        self.mailbox = None  # the streaming.Mailbox of the running event loop (set by the app)

    # ------------------------------------------------------------------------------ checks

    def check_key(self, request: Request) -> None:
        if self.api_key is None:
            return
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            key.strip().encode(), self.api_key.encode()
        ):
            raise RequestError(
                "missing or wrong API key: send the header `Authorization: Bearer <key>`",
                401,
                code="invalid_api_key",
            )

    def check_model(self, requested: str) -> None:
        if requested != self.name:
            raise RequestError(
                f"model {requested!r} is not served here; this server serves {self.name!r}",
                404,
                param="model",
                code="model_not_found",
            )

    def encode(self, text: str, param: str) -> list[int]:
        """The prompt's token ids, refused when empty or over the character or token limit."""
        if not text.strip():
            raise RequestError(f"{param} is empty", param=param)
        if len(text) > MAX_PROMPT_CHARS:
            raise RequestError(
                f"{param} has {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}",
                param=param,
                code="context_length_exceeded",
            )
        ids = self.tok.encode(text)
        if len(ids) > self.window:
            raise RequestError(
                f"{param} has {len(ids)} tokens; the model's context window is {self.window}",
                param=param,
                code="context_length_exceeded",
            )
        return ids

    # ------------------------------------------------------------------------------ answers

    async def chat(self, request: Request, body: ChatRequest):
        self.check_model(body.model)
        if body.messages[-1].role != "user":
            raise RequestError("the last message must be the user's", param="messages")
        text = chat_format.reply_prompt([(m.role, m.content) for m in body.messages])
        return await self._complete(request, body, self.encode(text, "messages"), CHAT)

    async def completion(self, request: Request, body: CompletionRequest):
        self.check_model(body.model)
        return await self._complete(request, body, self.encode(body.prompt, "prompt"), TEXT)

    async def inspect(self, body: InspectRequest) -> dict:
        """What one forward pass computed over the conversation (look_inside.py)."""
        self.check_model(body.model)
        messages = [(m.role, m.content) for m in body.messages]
        args = (conversation_inside, self.model, messages, body.step, body.head)
        try:
            inside = await asyncio.wrap_future(self.engine.run_aside(*args))
        except InputError as e:  # a step or head out of range: the message starts with its name
            raise RequestError(str(e), param=str(e).split()[0]) from None
        return {"model": self.name, **inside}

    def _generation(self, request: Request, body: CompletionFields, ids: list[int]):
        """Start generating now (so that a busy engine or a bad setting fails the request before
        any answer is sent) -> the (token, reason) events to come."""
        sampling = sampling_of(body)
        eos_id = -1 if body.ignore_eos else self.tok.eos_id
        if sampling.beam > 1:
            if body.stream:
                raise RequestError(
                    "beam search cannot stream: its answer is known only at the end", param="stream"
                )
            search = self.engine.beam_search(ids, sampling, eos_id)
            return beam_events(search, sampling.max_new_tokens)
        events: asyncio.Queue = asyncio.Queue()
        emit = lambda *event: self.mailbox.put(events, event)  # noqa: E731
        job = Job(ids, sampling, emit, eos_id)
        self.engine.submit(job)
        return job_events(request, job, events)

    async def _complete(self, request: Request, body: CompletionFields, ids, route: Route):
        stops = stop_strings(body.stop)
        events = self._generation(request, body, ids)
        reply = Reply(route, self.name, len(ids), Answer(self.tok, stops, strip_start=route.chat))
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
