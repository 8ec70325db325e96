"""The server under load and abuse: every kind of bad request gets its OpenAI error and the
server goes on; a body over the limit gets 413, never a reset; a server that holds all it may
answers 503 with Retry-After; clients that hang up (mid-body, mid-stream) free their rows and are
no error in the log; 64 clients at once get the answers they would get alone."""

import json
import os
import socket
import threading
import time

import httpx
import openai
import pytest
from serving import GOOD, QUESTIONS, chat_prompt, post, serving

from scratchlm.cli import main as cli
from scratchlm.generate import generate_batch
from scratchlm.model import load_model
from scratchlm.sampling import Sampling

pytestmark = pytest.mark.xdist_group("serve")  # one worker trains the model and runs the servers


# ------------------------------------------------------------------------------ errors

BAD_REQUESTS = {
    "malformed JSON": (b'{"model": "tiny", "messages": [', 400, None),
    "not an object": (b"[1, 2]", 400, None),
    "missing model": ({"messages": GOOD["messages"]}, 400, "model"),
    "wrong type": ({**GOOD, "max_tokens": "12"}, 400, "max_tokens"),
    "bool for a number": ({**GOOD, "temperature": True}, 400, "temperature"),
    "negative temperature": ({**GOOD, "temperature": -0.5}, 400, "temperature"),
    "top_p over 1": ({**GOOD, "top_p": 1.5}, 400, "top_p"),
    "top_k zero": ({**GOOD, "top_k": 0}, 400, "top_k"),
    "max_tokens over the cap": ({**GOOD, "max_tokens": 100_000}, 400, "max_tokens"),
    "n over the cap": ({**GOOD, "n": 9}, 400, "n"),
    "n zero": ({**GOOD, "n": 0}, 400, "n"),
    "bad stop": ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    "only a system message": (
        {**GOOD, "messages": [{"role": "system", "content": "x"}]},
        400,
        "messages",
    ),
    "a tool message": (
        {**GOOD, "messages": [{"role": "tool", "content": "x"}]},
        400,
        "messages[0].role",
    ),
    "top_logprobs without logprobs": ({**GOOD, "top_logprobs": 2}, 400, "top_logprobs"),
    "top_logprobs over the cap": (
        {**GOOD, "logprobs": True, "top_logprobs": 21},
        400,
        "top_logprobs",
    ),
    "beam with n": ({**GOOD, "beam": 2, "n": 2}, 400, "n"),
    "beam with logprobs": ({**GOOD, "beam": 2, "logprobs": True}, 400, "logprobs"),
    "no messages": ({**GOOD, "messages": []}, 400, "messages"),
    "ends with the assistant": (
        {**GOOD, "messages": [{"role": "assistant", "content": "x"}]},
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


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_requests_get_openai_errors(server, name):
    body, status, param = BAD_REQUESTS[name]
    r = post(server.url + "v1/chat/completions", body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]


def test_errors_reach_the_openai_client(client):
    with pytest.raises(openai.BadRequestError, match="temperature must be a number >= 0"):
        client.completions.create(model="tiny", prompt="Why?", temperature=-1)
    r = httpx.get(str(client.base_url) + "nowhere")
    assert r.status_code == 404 and r.json()["error"]["message"]


def test_api_key_and_model_names_guard_every_v1_route(model_path):
    env = {**os.environ, "SCRATCHLM_API_KEY": "s3cret"}
    names = ["--model-name", "tiny", "--model-name", "scratchlm"]
    with serving(model_path, *names, env=env) as server:
        # a wrong key, none, and one that is not ASCII (bytes: httpx would refuse the str)
        for headers in ({"Authorization": "Bearer wrong"}, {}, {"Authorization": b"Bearer \xe9"}):
            assert httpx.get(server.url + "v1/models", headers=headers).status_code == 401
            r = post(server.url + "v1/chat/completions", GOOD, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url + "v1", api_key="wrong", max_retries=0).models.list()
        good = openai.OpenAI(base_url=server.url + "v1", api_key="s3cret", max_retries=0)
        assert [m.id for m in good.models.list()] == ["tiny", "scratchlm"]
        for name in ("tiny", "scratchlm"):
            reply = good.chat.completions.create(model=name, messages=GOOD["messages"])
            assert reply.choices and reply.model == "tiny"
        with pytest.raises(openai.NotFoundError, match="gpt-9"):
            good.chat.completions.create(model="gpt-9", messages=GOOD["messages"])
        key = {"Authorization": "Bearer s3cret"}
        r = post(server.url + "v1/completions", {"model": "gpt-9", "prompt": "Why?"}, headers=key)
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        assert httpx.get(server.url + "health").status_code == 200  # open, like the page
        assert "scratchlm chat" in httpx.get(server.url).text


def test_a_body_over_the_limit_gets_413_not_a_reset(server):
    big = json.dumps({**GOOD, "pad": "x" * 10_000_000}).encode()  # 10 MB
    r = post(server.url + "v1/chat/completions", big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def pieces():  # no length announced: the limit is found while reading
        for _ in range(100):
            yield b"x" * 100_000

    r = httpx.post(server.url + "v1/chat/completions", content=pieces(), timeout=60)
    assert r.status_code == 413
    assert post(server.url + "v1/chat/completions", GOOD).status_code == 200


def raw_request(url, head: bytes, body: bytes) -> socket.socket:
    """A connection that has sent `head` and `body` of a request (and nothing more yet)."""
    host, port = url.removeprefix("http://").strip("/").rsplit(":", 1)
    conn = socket.create_connection((host, int(port)))
    conn.sendall(head + b"\r\n\r\n" + body)
    return conn


def test_a_full_server_answers_503_with_retry_after_and_hang_ups_are_no_error(model_path):
    """--max-batch 1 holds two jobs (one decodes, one waits for the row): a request for two long
    answers fills it, and requests that come meanwhile are refused at once. Clients that hang up
    mid-body or mid-answer are logged as info, and their jobs leave."""
    two = {**LONG, "n": 2}  # 2 x 1024 tokens, one after the other
    with serving(model_path, "--max-batch", "1") as server:
        with httpx.stream("POST", server.url + "v1/completions", json=two, timeout=60) as r:
            next(r.iter_lines())  # hung up mid-answer: both jobs leave
        assert server.wait_idle()["finished"] == {"cancelled": 2}
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000"
        raw_request(server.url, head, b'{"mo').close()  # hung up mid-body: no job
        body = json.dumps({**two, "stream": False}).encode()
        head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d" % len(body)
        conn = raw_request(server.url, head, body)
        deadline = time.monotonic() + 30
        while not server.health()["held"]:  # generating (not streamed) ...
            assert time.monotonic() < deadline
            time.sleep(0.002)
        conn.close()  # ... when the client hangs up
        assert server.wait_idle()["finished"] == {"cancelled": 4}
        logs = server.logs()
        assert "the client went away before its body arrived" in logs
        assert logs.count("the client went away; its request is cancelled") == 2, logs

        start, replies = threading.Barrier(4), [None] * 4

        def request(i):  # four at once: the first one in fills the server for a while
            start.wait()
            replies[i] = post(server.url + "v1/completions", {**two, "stream": False})

        threads = [threading.Thread(target=request, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        served = [r for r in replies if r.status_code == 200]
        refused = [r for r in replies if r.status_code == 503]
        assert len(served) >= 1 and len(refused) >= 1 and len(served) + len(refused) == 4
        for r in served:
            assert [c["finish_reason"] for c in r.json()["choices"]] == ["length", "length"]
        for r in refused:
            assert r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "server_busy"
        assert server.wait_idle()["held"] == 0


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
