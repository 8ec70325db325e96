"""The served model behind the routes: a checked request in, its answer out.

`Service` owns the engine and the tokenizer. It checks what the schemas cannot (the model's name,
the API key, the prompt against the model's limits), renders chat messages with the training chat
template (chat_format.py), starts the generation and shapes the answer as a `Reply`, whole or
streamed. Text lives here and in streaming.py, never in the engine (engine.py), which knows token
ids only.

Choices made for clients written for OpenAI's models:
- `system` (and `developer`) messages are left out of the prompt, and the response says so in the
  header X-Scratchlm-Warning: the model was trained without them, and shown as plain text before
  the conversation they lower its held-out answers (benchmarks/system_messages.py);
- any model name is the model served, unless `--model-name` lists the names to accept;
- `n` answers are n rows of the batch; with a seed, answer i draws with seed + i.
"""

import asyncio
import dataclasses
import hmac

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from .. import chat_format
from ..errors import InputError, RequestError
from ..look_inside import conversation_inside
from ..prompts import check_prompt_text, conversation_ids, fit, require_tokenizer
from ..sampling import Sampling
from .engine import Engine, Job
from .responses import CHAT, TEXT, Reply, Route
from .schemas import (
    ChatRequest,
    CompletionFields,
    CompletionRequest,
    InspectRequest,
    Message,
    sampling_of,
    stop_strings,
)
from .streaming import Answer, Emitter, answer_updates, beam_events, job_events

WARNING_HEADER = "X-Scratchlm-Warning"
SYSTEM_DROPPED = "system messages were left out: the model was trained without them"


class Service:
    """`model` served under the id `name`: requests may name it, any of `aliases`, or, when
    `aliases` is None, any model at all (one model is served: the name a client was configured
    with does not matter). With `api_key`, the /v1 routes need it."""

    def __init__(self, model, name: str, api_key=None, aliases=None, engine: Engine | None = None):
        self.tok = require_tokenizer(model)
        self.model, self.name, self.api_key = model, name, api_key
        self.names = None if aliases is None else [name, *aliases]  # None: any name
        self.window = model.config.max_seq_len
        self.engine = Engine(model) if engine is None else engine
        self.mailbox = None  # the streaming.Mailbox of the running event loop (set by the app)

    # ------------------------------------------------------------------------------ checks

    async def check_key(self, request: Request) -> None:
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
        if self.names is not None and requested not in self.names:
            served = ", ".join(map(repr, self.names))
            raise RequestError(
                f"model {requested!r} is not served here; this server serves {served}",
                404,
                param="model",
                code="model_not_found",
            )

    def checked(self, text: str, param: str) -> str:
        """The prompt text, refused when it is empty or over the character limit."""
        try:
            return check_prompt_text(text, param)
        except InputError as e:
            code = "context_length_exceeded" if text.strip() else None
            raise RequestError(str(e), param=param, code=code) from None

    # ------------------------------------------------------------------------------ answers

    async def chat(self, request: Request, body: ChatRequest):
        self.check_model(body.model)
        messages = conversation(body.messages)
        if messages[-1][0] != "user":
            raise RequestError("the last message must be the user's", param="messages")
        self.checked(chat_format.reply_prompt(messages), "messages")
        room = sampling_of(body).max_new_tokens
        ids, _ = conversation_ids(self.tok, messages, self.window, room)  # prompts.py's policy
        response = await self._complete(request, body, ids, CHAT)
        if len(messages) < len(body.messages):
            response.headers[WARNING_HEADER] = SYSTEM_DROPPED
        return response

    async def completion(self, request: Request, body: CompletionRequest):
        self.check_model(body.model)
        ids = self.tok.encode(self.checked(body.prompt, "prompt"))
        ids = fit(ids, self.window, sampling_of(body).max_new_tokens)  # prompts.py's policy
        return await self._complete(request, body, ids, TEXT)

    async def inspect(self, body: InspectRequest) -> dict:
        """What one forward pass computed over the conversation (look_inside.py)."""
        self.check_model(body.model)
        messages = conversation(body.messages)
        args = (conversation_inside, self.model, messages, body.step, body.head)
        try:
            inside = await asyncio.wrap_future(self.engine.run_aside(*args))
        except InputError as e:  # a step or head out of range: the message starts with its name
            raise RequestError(str(e), param=str(e).split()[0]) from None
        return {"model": self.name, **inside}

    def _generation(self, request: Request, body: CompletionFields, ids: list[int]):
        """Start generating now (so that a busy engine or a bad setting fails the request before
        any answer is sent) -> the jobs (none for beam search) and their events to come."""
        sampling = sampling_of(body)
        eos_id = -1 if body.ignore_eos else self.tok.eos_id
        if sampling.beam > 1:
            search = self.engine.beam_search(ids, sampling, eos_id)
            return [], beam_events(search, sampling.max_new_tokens)
        events: asyncio.Queue = asyncio.Queue()
        top = body.top_logprobs_asked()
        jobs = [
            Job(ids, choice_sampling(sampling, i), Emitter(self.mailbox, events, i), eos_id, top)
            for i in range(body.n or 1)
        ]
        self.engine.submit(*jobs)
        return jobs, job_events(request, jobs, events)

    async def _complete(self, request: Request, body, ids, route: Route):
        stops = stop_strings(body.stop)
        jobs, events = self._generation(request, body, ids)
        logprobs = body.top_logprobs_asked() is not None
        threshold = sampling_of(body).min_confidence
        answers = [
            Answer(self.tok, stops, route.chat, logprobs, threshold) for _ in range(body.n or 1)
        ]
        reply = Reply(route, self.name, len(ids), answers)
        updates = answer_updates(events, answers, jobs)
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return StreamingResponse(
                reply.events(updates, include_usage), media_type="text/event-stream"
            )
        async for _ in updates:
            pass
        if any(answer.finish_reason == "error" for answer in answers):
            raise RuntimeError("the engine failed while generating this answer")
        return JSONResponse(reply.whole())


def conversation(messages: list[Message]) -> list[tuple[str, str]]:
    """The (role, text) turns the model sees: system (developer) messages left out, since the
    model was trained without them and they lower its answers (benchmarks/system_messages.py)."""
    turns = [(m.role, m.text) for m in messages if m.role in ("user", "assistant")]
    if not turns:
        raise RequestError("messages has no user or assistant message", param="messages")
    return turns


def choice_sampling(sampling: Sampling, choice: int) -> Sampling:
    """The settings of answer `choice` of n: with a seed, answer i draws with seed + i, so that
    n answers differ and the first is the answer of the same request with n = 1."""
    if sampling.seed is None or choice == 0:
        return sampling
    return dataclasses.replace(sampling, seed=sampling.seed + choice)
