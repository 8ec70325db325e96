"""The HTTP side of `scratchlm serve`: OpenAI-compatible routes on FastAPI, and the chat page.

    GET  /                      the chat page (static/chat.html)
    GET  /health                {"status": "ok", ...} with the engine's counters
    GET  /v1/models             the one model served
    POST /v1/chat/completions   messages -> the training chat template (chat_format.py) -> a reply
    POST /v1/completions        a plain prompt, continued as it is (as `scratchlm generate` does)
    POST /v1/inspect            (ours) depths, attention and CoPE positions of one forward pass

This file only wires the routes: bodies are checked in schemas.py, answered by service.py,
streamed by streaming.py and shaped by responses.py. `stream: true` answers with server-sent events
ending in `data: [DONE]`. A client that goes away cancels its request: its row leaves the batch at
the next step.

Every error has the OpenAI shape {"error": {"message", "type", "param", "code"}} and its HTTP
status: 400 for a malformed or out-of-range request, 401 for a missing or wrong API key, 404 for an
unknown route (or a model other than the `--model-name`s), 413 for a body over MAX_BODY_BYTES, 503
with Retry-After when the engine holds all the requests it may (engine.py). docs/serve.md is the
user's guide (fields, extensions, limits, policies).

Not handled: tools, images, more than one model per server, TLS.
"""

import asyncio
import time
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse

from .engine import MAX_BATCH, Engine
from .responses import install_error_handlers
from .schemas import ChatRequest, CompletionRequest, InspectRequest, read_body
from .service import Service
from .streaming import FLUSH_INTERVAL_S, Mailbox


def create_app(
    model, name: str, api_key: str | None = None, aliases=None, max_batch: int = MAX_BATCH
) -> FastAPI:
    """The FastAPI app serving `model` under the id `name`, and the ids `aliases` (requests must
    name one of them) or, with aliases None, whatever model a request names. With `api_key`,
    every /v1 route needs the header `Authorization: Bearer <api_key>`. `max_batch` requests are
    decoded at once and as many more wait (engine.py). Its engine starts and stops with the app."""
    service = Service(model, name, api_key, aliases, Engine(model, 2 * max_batch, max_batch))
    page = (files("scratchlm") / "serve" / "static" / "chat.html").read_text(encoding="utf-8")
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app):
        service.mailbox = Mailbox(asyncio.get_running_loop(), FLUSH_INTERVAL_S)
        service.engine.start()
        yield
        service.engine.stop()

    app = FastAPI(title="scratchlm", lifespan=lifespan)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(service.check_key)])

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def chat_page():
        return page

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": name, **service.engine.stats()}

    @v1.get("/models")
    async def models():
        cards = [
            {"id": served, "object": "model", "created": created, "owned_by": "scratchlm"}
            for served in service.names or [name]
        ]
        return {"object": "list", "data": cards}

    @v1.post("/chat/completions")
    async def chat_completions(request: Request):
        return await service.chat(request, await read_body(request, ChatRequest))

    @v1.post("/completions")
    async def completions(request: Request):
        return await service.completion(request, await read_body(request, CompletionRequest))

    @v1.post("/inspect")
    async def inspect(request: Request):
        return await service.inspect(await read_body(request, InspectRequest))

    app.include_router(v1)
    install_error_handlers(app)
    return app
