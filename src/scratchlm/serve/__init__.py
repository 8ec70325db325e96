"""The server behind `scratchlm serve`: an OpenAI-compatible HTTP API and a chat page.

- engine.py: the model worker, continuous batching on token ids (no text);
- app.py: the FastAPI routes, request checks, the chat template, stop strings, server-sent events;
- static/chat.html: the offline chat page served at `/`.

FastAPI and uvicorn come with the optional extra `serve` (`pip install 'scratchlm[serve]'`); only
app.py imports them. docs/serve.md is the user's guide.
"""
