"""`scratchlm serve MODEL`: an OpenAI-compatible HTTP API and a chat page (see serve/app.py).

It binds 127.0.0.1 unless told otherwise: anyone who can reach the port can use the model, so give
`--api-key` (or $SCRATCHLM_API_KEY, which `ps` does not show) before opening it to a network.
`--port 0` picks a free port; the first line printed names the address either way.

BLAS runs on one thread unless $OPENBLAS_NUM_THREADS or $OMP_NUM_THREADS says otherwise: a decoding
step multiplies matrices of a few rows, where BLAS threads cost more than they bring, and they
would fight the event loop and the model worker for the cores (measured on 2 shared cores: 16
concurrent streams went from 2.5 times slower than sequential to 7 times faster).
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
    from ..model import load_model

    try:
        import uvicorn
        from threadpoolctl import threadpool_limits

        from ..serve.app import create_app
    except ImportError as e:
        raise InputError(
            f"serving needs FastAPI and uvicorn ({e}): pip install 'scratchlm[serve]'"
        ) from None
    model = load_model(args.model)
    try:
        sock = listen(args.host, args.port)
    except OSError as e:
        raise InputError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    if not {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"} & set(os.environ):
        threadpool_limits(1, user_api="blas")
    app = create_app(model, name=args.model.stem, api_key=args.api_key)
    host, port = sock.getsockname()[:2]
    address = f"[{host}]" if ":" in host else host  # an IPv6 address goes in brackets in a URL
    print(f"serving {args.model} as {args.model.stem!r} at http://{address}:{port}/", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, bound here rather than in uvicorn to know the real port at once
    (--port 0 too). Its protocol must be given as TCP: asyncio turns Nagle's algorithm off only on
    such sockets' connections, and with it on every keep-alive response waits 40 ms for an ACK."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
