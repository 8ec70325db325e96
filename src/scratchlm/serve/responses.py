"""What the server answers: the OpenAI response shapes, whole or as server-sent events, and errors.

A `Reply` is one request's response bodies: a `chat.completion` or `text_completion` object with
one choice per answer (`n`), or the chunks of a stream ending in `data: [DONE]`. Log-probabilities
take the shape of each route: `{"content": [{"token", "logprob", "bytes", "top_logprobs"}]}` in a
chat choice, `{"tokens", "token_logprobs", "top_logprobs", "text_offset"}` in a completion's. A
token is written as the vocabulary spells it. Every error has the OpenAI shape
{"error": {"message", "type", "param", "code"}} and its HTTP status (`install_error_handlers`).
"""

import json
import logging
import time
import uuid
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from ..errors import RequestError, ServerBusyError
from .streaming import Answer

logger = logging.getLogger("scratchlm")

RETRY_AFTER_S = 1  # what a refused client is told to wait: rows free up within moments


@dataclass(frozen=True)
class Route:
    """What differs between the chat and the plain completion responses."""

    object: str  # of a whole response
    chunk_object: str  # of a streamed chunk
    id_prefix: str
    chat: bool

    def choice(self, i: int, text, reason, logprobs, chunk: bool) -> dict:
        """Choice i; in a chat chunk, text None announces the role and "" carries no delta."""
        if not self.chat:
            return {"index": i, "text": text or "", "logprobs": logprobs, "finish_reason": reason}
        if not chunk:
            message = {"role": "assistant", "content": text}
            return {"index": i, "message": message, "logprobs": logprobs, "finish_reason": reason}
        delta = {"role": "assistant", "content": ""} if text is None else {"content": text}
        delta = delta if text != "" else {}
        return {"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": reason}

    def logprobs(self, answer: Answer, entries) -> dict | None:
        """The route's shape of the log-probabilities of `entries` (Answer.logprobs)."""
        if answer.logprobs is None:
            return None
        word = lambda t: answer.tokenizer.decode([t], skip_special=False)  # noqa: E731
        if self.chat:
            content = []
            for token, lp, _ in entries:
                top = [
                    _chat_entry(word(t), p)
                    for t, p in zip(lp.top_ids, lp.top_logprobs, strict=True)
                ]
                content.append({**_chat_entry(word(token), lp.logprob), "top_logprobs": top})
            return {"content": content, "refusal": None}
        return {
            "tokens": [word(token) for token, _, _ in entries],
            "token_logprobs": [lp.logprob for _, lp, _ in entries],
            "top_logprobs": [
                {word(t): p for t, p in zip(lp.top_ids, lp.top_logprobs, strict=True)}
                for _, lp, _ in entries
            ],
            "text_offset": [offset for _, _, offset in entries],
        }


def _chat_entry(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


CHAT = Route("chat.completion", "chat.completion.chunk", "chatcmpl", chat=True)
TEXT = Route("text_completion", "text_completion", "cmpl", chat=False)


@dataclass
class Reply:
    """The response bodies of one request's answers: whole, or as server-sent events."""

    route: Route
    model: str
    prompt_tokens: int
    answers: list[Answer]

    def __post_init__(self):
        self.id = f"{self.route.id_prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def whole(self) -> dict:
        choices = [
            self.route.choice(
                i, a.text, a.finish_reason, self.route.logprobs(a, a.take_logprobs()), chunk=False
            )
            for i, a in enumerate(self.answers)
        ]
        return {**self._head(self.route.object), "choices": choices, "usage": self.usage()}

    async def events(self, updates, include_usage: bool):
        """The server-sent events of the answers' updates, ending in `data: [DONE]`: one string
        per list of updates (one write to the socket), the chunks of every choice with news."""
        usage = {"usage": None} if include_usage else {}  # OpenAI's chunks say null till the end
        start = []  # what goes out with the first news: a chat stream first names the role
        if self.route.chat:
            start = [self._chunk(i, None, usage) for i in range(len(self.answers))]
        async for news in updates:
            out = start
            for i, piece in news:
                answer = self.answers[i]
                if answer.finish_reason == "error":
                    message = "the engine failed while generating this answer"
                    yield "".join(out) + sse(error_body(message, "server_error"))
                    return
                if piece:
                    out.append(self._chunk(i, piece, usage))
                if answer.finish_reason is not None:
                    out.append(self._chunk(i, "", usage, answer.finish_reason))
            start = []
            yield "".join(out)
        if include_usage:
            start.append(
                sse({**self._head(self.route.chunk_object), "choices": [], **self.usage(True)})
            )
        yield "".join(start) + "data: [DONE]\n\n"

    def usage(self, wrapped=False) -> dict:
        n = sum(a.tokens for a in self.answers)
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": n,
            "total_tokens": self.prompt_tokens + n,
        }
        return {"usage": usage} if wrapped else usage

    def _chunk(self, i: int, text: str | None, usage: dict, reason: str | None = None) -> str:
        answer = self.answers[i]
        logprobs = self.route.logprobs(answer, answer.take_logprobs())
        choice = self.route.choice(i, text, reason, logprobs, chunk=True)
        return sse({**self._head(self.route.chunk_object), "choices": [choice], **usage})

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
        body = error_body(str(e), "server_error", code="server_busy")
        return JSONResponse(body, 503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(ClientDisconnect)
    async def gone(request, e: ClientDisconnect):  # nobody is left to answer: no error of ours
        logger.info(
            "%s %s: the client went away before its body arrived", request.method, request.url.path
        )
        return Response(status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request, e: HTTPException):  # unknown route, wrong method
        message = f"{request.method} {request.url.path}: {e.detail}"
        return JSONResponse(error_body(message), e.status_code, headers=e.headers)

    @app.exception_handler(Exception)
    async def crashed(request, e: Exception):  # a bug: the request fails, the server goes on
        logger.error("%s %s failed: %r", request.method, request.url.path, e)
        return JSONResponse(error_body(f"internal error: {e}", "server_error"), 500)
