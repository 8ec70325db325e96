"""The server end to end: `scratchlm serve` runs in its own process on a free local port, with a
small model trained here, and is spoken to by the official `openai` client, by raw HTTP, by 64
threads at once and by headless Chromium. Every answer is checked against `scratchlm generate`
or `generate_batch` for the same prompt and settings."""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import numpy as np
import openai
import pytest

from scratchlm import chat_format
from scratchlm.cli import main as cli
from scratchlm.generate import generate_batch
from scratchlm.model import load_model
from scratchlm.sampling import Sampling
from scratchlm.train import BUNDLED_DATA, Phase, RunOptions, train_examples
from scratchlm.trainer import TrainConfig

pytestmark = pytest.mark.xdist_group("serve")  # one worker trains the model and runs the server

CHAT = json.loads((BUNDLED_DATA / "chat.json").read_text())[:24]
QUESTIONS = [
    chat_format.split_answer(c)[0].removeprefix("User: ")[: -len(" Assistant:")] for c in CHAT
]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A model that has learned a few bundled chat answers (a few seconds of training)."""
    folder = tmp_path_factory.mktemp("serve")
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


@pytest.fixture(scope="module")
def server(model_path):
    server = Server(model_path)
    yield server
    logs = server.logs()
    server.stop()
    assert "Traceback" not in logs, logs


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url + "v1", api_key="unused", max_retries=0, timeout=60)


def scratchlm_generate(model_path, prompt, *options) -> dict:
    """What `scratchlm generate MODEL PROMPT --json ...` prints: {"completion", "tokens", ...}."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(["generate", str(model_path), prompt, "--json", *options]) == 0
    return json.loads(out.getvalue())


def chat_prompt(question):
    return chat_format.reply_prompt([("user", question)])


# ------------------------------------------------------------------------------ the API


def test_models_and_health(client, server):
    assert [m.id for m in client.models.list()] == ["tiny"]
    health = server.health()
    assert health["status"] == "ok" and health["model"] == "tiny"


SETTINGS = {
    "greedy": ({}, []),
    "sampled": (
        {"temperature": 0.9, "top_p": 0.95, "seed": 7},
        ["--temperature", "0.9", "--top-p", "0.95", "--seed", "7"],
    ),
    "top_k": (
        {"temperature": 1.5, "seed": 3, "extra_body": {"top_k": 4}},
        ["--temperature", "1.5", "--top-k", "4", "--seed", "3"],
    ),
}


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_chat_equals_scratchlm_generate(client, model_path, setting):
    kwargs, options = SETTINGS[setting]
    question = QUESTIONS[1]
    cli_out = scratchlm_generate(model_path, chat_prompt(question), *options)
    expected = cli_out["completion"]
    messages = [{"role": "user", "content": question}]
    whole = client.chat.completions.create(model="tiny", messages=messages, **kwargs)
    assert whole.choices[0].message.content == expected
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage.completion_tokens == cli_out["tokens"]
    stream = client.chat.completions.create(
        model="tiny",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        **kwargs,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_plain_completion_and_beam_equal_scratchlm_generate(client, model_path):
    prompt = chat_prompt(QUESTIONS[2])
    prompt_tokens = len(load_model(model_path).tokenizer.encode(prompt))
    expected = scratchlm_generate(model_path, prompt, "--max-tokens", "5")["completion"]
    out = client.completions.create(model="tiny", prompt=prompt, max_tokens=5)
    assert out.choices[0].text == expected
    assert out.choices[0].finish_reason == "length"
    assert out.usage.prompt_tokens == prompt_tokens and out.usage.completion_tokens == 5
    beam = scratchlm_generate(model_path, prompt, "--beam", "3")["completion"]
    out = client.completions.create(model="tiny", prompt=prompt, extra_body={"beam": 3})
    assert out.choices[0].text == beam


def test_stop_strings_cut_the_answer(client, model_path):
    question = QUESTIONS[0]
    full = scratchlm_generate(model_path, chat_prompt(question))["completion"]
    stop = full.split()[3]  # a word in the middle of the answer
    expected = full[: full.index(stop)]
    messages = [{"role": "user", "content": question}]
    out = client.chat.completions.create(model="tiny", messages=messages, stop=[stop, "zzz"])
    assert out.choices[0].message.content == expected
    assert out.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(model="tiny", messages=messages, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == expected


def test_inspect_returns_depths_attention_and_positions(server):
    messages = [
        {"role": "user", "content": QUESTIONS[0]},
        {"role": "assistant", "content": "Mountains form slowly."},
    ]
    r = httpx.post(
        server.url + "v1/inspect",
        json={"model": "tiny", "messages": messages, "step": 1, "head": 1},
    )
    inside = r.json()
    assert r.status_code == 200, inside
    tokens = inside["tokens"]
    assert tokens[inside["answer_start"] :] == ["Mountains", "form", "slowly", "."]
    assert inside["depth"] == [2] * len(tokens) and inside["steps"] == 2 and inside["heads"] == 2
    a, p = np.array(inside["attention"]), np.array(inside["positions"])
    assert a.shape == p.shape == (len(tokens),) * 2
    np.testing.assert_allclose(a.sum(axis=1), 1, atol=1e-3)
    assert (np.triu(a, 1) == 0).all() and (p >= 0).all() and (p <= 7).all()


@pytest.mark.parametrize(
    "text, answer_text, finish",
    [
        ("xyab c", "xy", "stop"),  # cut before the stop string
        ("xyac", "xyac", "length"),  # "a" may begin "ab": held back until "c" says no
        ("  zz", "", "stop"),  # leading spaces dropped, then a stop string at once
        ("x az", "x az", "length"),  # half a stop string at the very end
    ],
)
def test_answer_cuts_at_stop_strings_and_never_sends_part_of_one(text, answer_text, finish):
    from scratchlm.serve.app import Answer
    from scratchlm.tokenizers import CharTokenizer

    tok = CharTokenizer.build([text])
    answer = Answer(tok, ["ab", "zz"], strip_start=True)
    events = [(token, None) for token in tok.encode(text)] + [(None, "length")]
    pieces = [answer.add(token, reason) for token, reason in events]
    assert "".join(pieces) == answer.text == answer_text
    assert answer.finish_reason == finish
    assert not any("a" in p and "ab" in text for p in pieces)


def test_mailbox_delivers_at_once_after_a_pause_then_gathers_for_its_interval():
    """The engine's events reach the loop at once when none came for an interval; the next ones
    wait for the interval to pass and then arrive together (one chunk per stream)."""
    import asyncio

    from scratchlm.serve.app import Mailbox

    async def scenario():
        box, events = Mailbox(asyncio.get_running_loop(), interval=1.0), asyncio.Queue()
        threading.Thread(target=box.put, args=(events, (1, None))).start()  # as the engine does
        await asyncio.wait_for(events.get(), 0.5)  # the first one: at the loop's next turn
        for token in (2, 3):
            box.put(events, (token, None))
        await asyncio.sleep(0.1)
        assert events.empty()  # held back: the last delivery was under an interval ago
        got = [await asyncio.wait_for(events.get(), 2.0), events.get_nowait()]
        assert got == [(2, None), (3, None)]

    asyncio.run(scenario())


# ------------------------------------------------------------------------------ errors

GOOD = {"model": "tiny", "messages": [{"role": "user", "content": "Why?"}]}
BAD_REQUESTS = {
    "malformed JSON": (b'{"model": "tiny", "messages": [', 400, None),
    "not an object": (b"[1, 2]", 400, None),
    "missing model": ({"messages": GOOD["messages"]}, 400, "model"),
    "unknown model": ({**GOOD, "model": "gpt-9"}, 404, "model"),
    "wrong type": ({**GOOD, "max_tokens": "12"}, 400, "max_tokens"),
    "bool for a number": ({**GOOD, "temperature": True}, 400, "temperature"),
    "negative temperature": ({**GOOD, "temperature": -0.5}, 400, "temperature"),
    "top_p over 1": ({**GOOD, "top_p": 1.5}, 400, "top_p"),
    "top_k zero": ({**GOOD, "top_k": 0}, 400, "top_k"),
    "max_tokens over the cap": ({**GOOD, "max_tokens": 100_000}, 400, "max_tokens"),
    "two answers": ({**GOOD, "n": 2}, 400, "n"),
    "bad stop": ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    "system message": (
        {**GOOD, "messages": [{"role": "system", "content": "x"}]},
        400,
        "messages[0].role",
    ),
    "no messages": ({**GOOD, "messages": []}, 400, "messages"),
    "ends with the assistant": (
        {**GOOD, "messages": [{"role": "assistant", "content": "x"}]},
        400,
        "messages",
    ),
    "prompt over the window": (
        {**GOOD, "messages": [{"role": "user", "content": "why " * 60}]},
        400,
        "messages",
    ),
    "prompt over the characters": (
        {**GOOD, "messages": [{"role": "user", "content": "a" * 10_001}]},
        400,
        "messages",
    ),
    "beam cannot stream": ({**GOOD, "beam": 2, "stream": True}, 400, "stream"),
    "body over the limit": ({**GOOD, "pad": "x" * 300_000}, 413, None),
}


def post(url, body, **kwargs):
    if isinstance(body, bytes):
        return httpx.post(url, content=body, timeout=60, **kwargs)
    return httpx.post(url, json=body, timeout=60, **kwargs)


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_requests_get_openai_errors(server, name):
    body, status, param = BAD_REQUESTS[name]
    r = post(server.url + "v1/chat/completions", body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]


def test_errors_reach_the_openai_client(client):
    with pytest.raises(openai.NotFoundError, match="gpt-9"):
        client.chat.completions.create(model="gpt-9", messages=GOOD["messages"])
    with pytest.raises(openai.BadRequestError, match="temperature must be >= 0"):
        client.completions.create(model="tiny", prompt="Why?", temperature=-1)
    with pytest.raises(openai.BadRequestError, match="context window"):
        client.completions.create(model="tiny", prompt="why " * 60)
    r = httpx.get(str(client.base_url) + "nowhere")
    assert r.status_code == 404 and r.json()["error"]["message"]


def test_api_key_guards_every_v1_route(model_path):
    env = {**os.environ, "SCRATCHLM_API_KEY": "s3cret"}
    server = Server(model_path, env=env)
    try:
        # a wrong key, none, and one that is not ASCII (bytes: httpx would refuse the str)
        for headers in ({"Authorization": "Bearer wrong"}, {}, {"Authorization": b"Bearer \xe9"}):
            assert httpx.get(server.url + "v1/models", headers=headers).status_code == 401
            r = post(server.url + "v1/chat/completions", GOOD, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url + "v1", api_key="wrong", max_retries=0).models.list()
        good = openai.OpenAI(base_url=server.url + "v1", api_key="s3cret", max_retries=0)
        assert good.chat.completions.create(model="tiny", messages=GOOD["messages"]).choices
        assert httpx.get(server.url + "health").status_code == 200  # open, like the page
        assert "scratchlm chat" in httpx.get(server.url).text
    finally:
        server.stop()


# ------------------------------------------------------------------------------ concurrency


LONG = {"model": "tiny", "prompt": "Why?", "max_tokens": 1024, "ignore_eos": True, "stream": True}


def stream_then_hang_up(url, chunks=3):
    """Read a few events of a long stream, then close the connection -> the events read."""
    with httpx.stream("POST", url + "v1/completions", json=LONG, timeout=60) as r:
        assert r.status_code == 200
        events = []
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
            if len(events) == chunks:
                return events
    raise AssertionError("the stream ended early")


def test_a_client_that_hangs_up_frees_its_row(server):
    cancelled = server.wait_idle()["finished"].get("cancelled", 0)
    events = stream_then_hang_up(server.url)
    assert all(e["choices"][0]["finish_reason"] is None for e in events)
    health = server.wait_idle()  # well before its 1024 tokens could have been made
    assert health["finished"]["cancelled"] == cancelled + 1


def test_64_concurrent_requests_streamed_cancelled_or_malformed(server, model_path):
    model = load_model(model_path)
    tok = model.tokenizer
    greedy = {}
    for q in QUESTIONS[:8]:
        greedy[q] = tok.decode(generate_batch(model, [tok.encode(chat_prompt(q))], Sampling())[0])
    cancelled = server.wait_idle()["finished"].get("cancelled", 0)
    bad = list(BAD_REQUESTS.values())
    start = threading.Barrier(64, timeout=60)
    results = [None] * 64

    def request(i):
        start.wait()
        question = QUESTIONS[i % 8]
        body = {**GOOD, "messages": [{"role": "user", "content": question}]}
        if i % 4 == 0:  # plain
            r = post(server.url + "v1/chat/completions", body)
            results[i] = r.json()["choices"][0]["message"]["content"] == greedy[question]
        elif i % 4 == 1:  # streamed
            text = ""
            with httpx.stream(
                "POST",
                server.url + "v1/chat/completions",
                json={**body, "stream": True},
                timeout=60,
            ) as r:
                lines = [line for line in r.iter_lines() if line.startswith("data: ")]
            assert lines[-1] == "data: [DONE]"
            for line in lines[:-1]:
                text += json.loads(line[6:])["choices"][0]["delta"].get("content", "")
            results[i] = text == greedy[question]
        elif i % 4 == 2:  # cancelled mid-stream
            results[i] = len(stream_then_hang_up(server.url)) == 3
        else:  # malformed
            body, status, _ = bad[i % len(bad)]
            results[i] = post(server.url + "v1/chat/completions", body).status_code == status

    threads = [threading.Thread(target=request, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [True] * 64
    health = server.wait_idle()
    assert health["status"] == "ok"
    assert health["finished"]["cancelled"] == cancelled + 16


# ------------------------------------------------------------------------------ the chat page


def chromium():
    """Headless Chromium and its driver from the system packages, or a skip saying why."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no chromium and chromedriver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    flags = "--headless --no-sandbox --disable-gpu --disable-background-networking "
    flags += "--disable-component-update --no-first-run --disable-sync --window-size=1200,900"
    for flag in flags.split():
        opts.add_argument(flag)
    opts.add_argument("--user-data-dir=" + tempfile.mkdtemp())
    return webdriver.Chrome(options=opts, service=Service(driver))


def test_chat_page_streams_an_answer_and_looks_inside(server, model_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    expected = scratchlm_generate(model_path, chat_prompt(QUESTIONS[0]))["completion"]
    browser = chromium()
    try:
        browser.get(server.url)
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "model").text == "tiny")
        browser.find_element(By.ID, "question").send_keys(QUESTIONS[0])
        browser.find_element(By.ID, "send").click()
        inside = browser.find_element(By.ID, "inside")
        WebDriverWait(browser, 30).until(lambda b: inside.get_attribute("data-tokens"))
        answer = browser.find_elements(By.CSS_SELECTOR, "#messages .assistant")[-1].text
        assert answer == expected
        assert inside.is_displayed()
        depths = browser.find_elements(By.CSS_SELECTOR, "#depths span")
        assert len(depths) == int(inside.get_attribute("data-tokens"))
        answer_tokens = [s.text for s in depths if s.get_attribute("class") != "prompt"]
        tok = load_model(model_path).tokenizer
        assert answer_tokens == [tok.decode([i]) for i in tok.encode(expected)]
        heads = browser.find_elements(By.CSS_SELECTOR, "#head option")
        assert len(heads) == 2
        canvas = browser.find_element(By.ID, "attention")
        assert int(canvas.get_attribute("width")) >= 2 * len(depths)
        browser.find_element(By.ID, "reset").click()
        assert not browser.find_elements(By.CSS_SELECTOR, "#messages .msg")
    finally:
        browser.quit()


# ------------------------------------------------------------------------------ the command


def test_serve_mistakes_exit_2_with_one_error_line(server, tmp_path, capsys):
    port = server.url.rsplit(":", 1)[1].strip("/")
    mistakes = [
        ["serve", str(tmp_path / "nope.safetensors")],
        ["serve", str(server.model_path), "--port", port],  # taken by the running server
        ["serve", str(server.model_path), "--host", "no such host.invalid"],
    ]
    for argv in mistakes:
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
