"""What a request may say: the bodies of the server's routes, checked field by field.

A body is read no further than MAX_BODY_BYTES and validated by pydantic, strictly ("5" is not a
number, true is not 1); the first problem becomes a `RequestError` whose `param` names the field.
The decoding settings are then checked by `Sampling` itself, the one place for them, and the stop
strings here. Unknown fields are ignored, as many OpenAI clients send some, and the optional
OpenAI fields may be null (some clients send every field).
"""

import json
from typing import Annotated, Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..errors import InputError, RequestError
from ..sampling import Sampling, setting_name, setting_type, settings
from .engine import MAX_TOP_LOGPROBS

MAX_BODY_BYTES = 256 * 1024  # a prompt is at most 10,000 characters: this leaves room for JSON
MAX_TOKENS = 1024  # the largest max_tokens a request may ask for
MAX_STOPS = 4  # stop strings per request, as in the OpenAI API
MAX_N = 8  # answers per request: each is a row of the batch
MAX_LOGPROBS = 5  # alternatives per token on /v1/completions, as in the OpenAI API


class Body(BaseModel):
    # Strict: "5" is not a number, true is not 1. Unknown fields (user, presence_penalty, ...) are
    # ignored, as many OpenAI clients send some.
    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(Body):
    type: Literal["text"]
    text: str


class Message(Body):
    """A chat message. `system` (and its newer name `developer`) is accepted and left out of the
    prompt: the model was trained without it (service.py). Content may be a list of text parts."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(Body):
    include_usage: bool = False


def _sampling_fields() -> type[Body]:
    """A body's decoding settings: one optional field per `Sampling` setting, by the name users
    type (max_tokens, temperature, top_p, and our extensions top_k, beam, min_confidence), null
    or absent for its default. `Sampling` checks the values (`sampling_of`); the schema checks
    their types, and caps max_tokens for a server."""
    fields = {}
    for f in settings():
        kind = setting_type(f) | None
        if setting_name(f) == "max_tokens":
            kind = Annotated[int, Field(ge=0, le=MAX_TOKENS)] | None
        fields[setting_name(f)] = (kind, None)
    return create_model("SamplingFields", __base__=Body, **fields)


class CompletionFields(_sampling_fields()):
    """What both completion routes accept; `ignore_eos` is our extension."""

    model: str
    stop: Any = None  # a string or a list of up to MAX_STOPS strings (checked in `stop_strings`)
    n: Annotated[int, Field(ge=1, le=MAX_N)] | None = None  # None: 1
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False  # go on after the end-of-sequence token (benchmarks)


class ChatRequest(CompletionFields):
    messages: Annotated[list[Message], Field(min_length=1)]
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None

    def top_logprobs_asked(self) -> int | None:
        """How many alternatives each token's log-probability comes with; None: no logprobs."""
        if self.top_logprobs is not None and not self.logprobs:
            raise RequestError("top_logprobs needs logprobs: true", param="top_logprobs")
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(CompletionFields):
    prompt: str
    logprobs: Annotated[int, Field(ge=0, le=MAX_LOGPROBS)] | None = None  # alternatives per token

    def top_logprobs_asked(self) -> int | None:
        return self.logprobs


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
    given = {f.name: getattr(body, setting_name(f)) for f in settings()}
    try:
        sampling = Sampling(**{name: value for name, value in given.items() if value is not None})
    except InputError as e:  # its messages start with the setting's name
        name = {f.name: setting_name(f) for f in settings()}.get(str(e).split()[0])
        raise RequestError(str(e), param=name) from None
    if sampling.beam > 1:  # one answer, known only at the end, without a distribution per token
        if body.stream:
            raise RequestError(
                "beam search cannot stream: its answer is known only at the end", param="stream"
            )
        if (body.n or 1) > 1:
            raise RequestError("beam search gives one answer: n must be 1", param="n")
        if body.top_logprobs_asked() is not None:
            raise RequestError("beam search gives no logprobs", param="logprobs")
        if sampling.min_confidence is not None:
            raise RequestError("beam search gives no confidence", param="min_confidence")
    return sampling


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
