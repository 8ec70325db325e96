"""What the server tests share: one small model trained once per test process on a few bundled chat
answers, `scratchlm serve` in a child process on a free local port, and the reference answers of
`scratchlm generate`. The server test modules are marked with the xdist group "serve", so that one
worker trains the model and runs their servers."""

import contextlib
import functools
import io
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from scratchlm import chat_format
from scratchlm.cli import main as cli
from scratchlm.train import BUNDLED_DATA, Phase, RunOptions, train_examples
from scratchlm.trainer import TrainConfig

CHAT = json.loads((BUNDLED_DATA / "chat.json").read_text())[:24]
QUESTIONS = [
    chat_format.split_answer(c)[0].removeprefix("User: ")[: -len(" Assistant:")] for c in CHAT
]
GOOD = {"model": "tiny", "messages": [{"role": "user", "content": "Why?"}]}


@functools.cache
def trained_model(folder: Path) -> Path:
    """A model that has learned a few bundled chat answers (a few seconds of training), in
    `folder`; trained once per process whichever test module asks first."""
    (folder / "chat.json").write_text(json.dumps(CHAT))
    model = {"d_model": 32, "n_heads": 2, "d_ff": 64, "depth": 2, "max_seq_len": 48}
    train = TrainConfig(epochs=40, batch_size=8, lr=1e-2, warmup=0.05)
    opts = RunOptions(
        output=folder / "tiny.safetensors",
        model={**model, "cope_max_pos": 8},
        phases=[Phase("chat", [folder / "chat.json"], train)],
    )
    with contextlib.redirect_stdout(io.StringIO()):
        train_examples(opts)
    return opts.output


class Server:
    """`scratchlm serve MODEL --port 0 ...` in a child process; `url` ends with a slash."""

    def __init__(self, model_path, *args, env=None):
        self.model_path = model_path
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop)
        cmd = [sys.executable, "-m", "scratchlm", "serve", str(model_path), "--port", "0", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env
        )
        line = self.proc.stdout.readline()  # the socket listens once this line is out
        found = re.search(r"http://\S+/", line)
        if not found:
            self.stop()
            raise RuntimeError(f"the server did not start: {line!r} {self.logs()}")
        self.url = found.group(0)

    def logs(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def health(self) -> dict:
        return httpx.get(self.url + "health", timeout=30).json()

    def wait_idle(self, seconds=30) -> dict:
        """/health once no request is running (bounded wait)."""
        deadline = time.monotonic() + seconds
        while (health := self.health())["running"] or health["held"]:
            assert time.monotonic() < deadline, health
            time.sleep(0.05)
        return health

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.proc.stdout.close()
        self.log.close()


@contextlib.contextmanager
def serving(model_path, *args, env=None):
    """A running Server; afterwards its log must hold no traceback (a request's failure, a client
    that went away: none of them is an error of the server's)."""
    server = Server(model_path, *args, env=env)
    try:
        yield server
        logs = server.logs()
        assert "Traceback" not in logs and "level=error" not in logs, logs
    finally:
        server.stop()


def scratchlm_generate(model_path, prompt, *options) -> dict:
    """What `scratchlm generate MODEL PROMPT --json ...` prints: {"completion", "tokens", ...}."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(["generate", str(model_path), prompt, "--json", *options]) == 0
    return json.loads(out.getvalue())


def chat_prompt(question):
    return chat_format.reply_prompt([("user", question)])


def post(url, body, **kwargs):
    if isinstance(body, bytes):
        return httpx.post(url, content=body, timeout=60, **kwargs)
    return httpx.post(url, json=body, timeout=60, **kwargs)


def sse_events(lines) -> list:
    """The JSON events of a stream's `data:` lines, which must end with `data: [DONE]`."""
    lines = [line for line in lines if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]", lines[-3:]
    return [json.loads(line[6:]) for line in lines[:-1]]
