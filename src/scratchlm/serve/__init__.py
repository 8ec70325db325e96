"""The server behind `scratchlm serve`: an OpenAI-compatible HTTP API and a chat page.

- engine.py: the model worker, continuous batching on token ids (no text);
- app.py: the FastAPI app, which only wires the routes to
  - schemas.py: the request bodies and their checks,
  - service.py: the served model: prompts, the chat template, starting a generation,
  - streaming.py: the engine's tokens to the event loop, text and stop strings as they come,
  - responses.py: the OpenAI response shapes, server-sent events and errors;
- static/chat.html: the offline chat page served at `/`.

FastAPI and uvicorn come with the optional extra `serve` (`pip install 'scratchlm[serve]'`); every
module here but engine.py imports them. docs/serve.md is the user's guide.
"""
