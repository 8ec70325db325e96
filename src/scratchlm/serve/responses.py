"""What the server answers: the OpenAI response shapes, whole or as server-sent events, and errors.

A `Reply` is one answer's response bodies: a `chat.completion` or `text_completion` object, or
the chunks of a stream ending in `data: [DONE]`. Every error has the OpenAI shape
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

from ..errors import RequestError, ServerBusyError
from .streaming import Answer

logger = logging.getLogger("scratchlm")


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
