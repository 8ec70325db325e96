"""`scratchlm serve MODEL`: an OpenAI-compatible HTTP API and a chat page (see serve/app.py).

It binds 127.0.0.1 unless told otherwise: anyone who can reach the port can use the model, so give
`--api-key` (or $SCRATCHLM_API_KEY, which `ps` does not show) before opening it to a network.
`--port 0` picks a free port; the first line printed names the address either way.
"""

import os
import socket
from pathlib import Path


def register(sub):
    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API")
    p.add_argument("model", type=Path, help="model file (.safetensors or .json)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free one)")
    p.add_argument(
        "--api-key",
        default=os.environ.get("SCRATCHLM_API_KEY"),
        help="require `Authorization: Bearer KEY` on /v1 routes (default $SCRATCHLM_API_KEY)",
    )
    p.set_defaults(func=main)


def main(args) -> int:
    from ..errors import InputError
    from ..modelfile import load_model

    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError as e:
        raise InputError(
            f"serving needs FastAPI and uvicorn ({e}): pip install 'scratchlm[serve]'"
        ) from None
    model = load_model(args.model)
    app = create_app(model, name=args.model.stem, api_key=args.api_key)
    # Binding here, not in uvicorn, tells the real port at once (with --port 0 too).
    try:
        sock = socket.create_server((args.host, args.port))
    except OSError as e:
        raise InputError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from None
    host, port = sock.getsockname()[:2]
    print(f"serving {args.model} as {args.model.stem!r} at http://{host}:{port}/", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0
