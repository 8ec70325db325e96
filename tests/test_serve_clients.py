"""The clients people already run against "OpenAI-compatible" servers, unchanged, against a real
`scratchlm serve`: LangChain's ChatOpenAI (in this process) and the `llm` command line tool (in
its own). Both send what they always send (a system message, the model name they were configured
with, sampling fields), and their answers must be what `scratchlm generate` gives. All proxies
point at a closed port, so a client that reached for anything but our server (a tokenizer
download, a price list) would fail here."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from serving import QUESTIONS, chat_prompt, scratchlm_generate

pytestmark = pytest.mark.xdist_group("serve")  # one worker trains the model and runs the servers

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there
OFFLINE = {"HTTP_PROXY": NOWHERE, "HTTPS_PROXY": NOWHERE, "ALL_PROXY": NOWHERE}
OFFLINE |= {"NO_PROXY": "127.0.0.1,localhost"}
SYSTEM = "You are a helpful assistant."


@pytest.fixture
def offline(monkeypatch):
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)


def test_langchain_chat_openai(server, model_path, offline):
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    expected = [scratchlm_generate(model_path, chat_prompt(q))["completion"] for q in QUESTIONS[:4]]
    chat = ChatOpenAI(
        base_url=server.url + "v1", api_key="unused", model="gpt-4o-mini", max_retries=0
    )
    reply = chat.invoke([SystemMessage(SYSTEM), HumanMessage(QUESTIONS[0])])
    assert reply.content == expected[0]
    assert reply.response_metadata["finish_reason"] == "stop"
    streamed = list(chat.stream([SystemMessage(SYSTEM), HumanMessage(QUESTIONS[1])]))
    assert "".join(c.content for c in streamed) == expected[1]
    assert [r.content for r in chat.batch(QUESTIONS[:4])] == expected  # concurrent requests

    counted = ChatOpenAI(
        base_url=server.url + "v1",
        api_key="unused",
        model="gpt-4o-mini",
        logprobs=True,
        top_logprobs=2,
        stream_usage=True,
    )
    reply = counted.invoke(QUESTIONS[2])
    content = reply.response_metadata["logprobs"]["content"]
    assert len(content) == reply.usage_metadata["output_tokens"] > 0
    assert all(len(c["top_logprobs"]) == 2 and c["logprob"] <= 0 for c in content)
    usage = [c.usage_metadata for c in counted.stream(QUESTIONS[2]) if c.usage_metadata]
    assert usage[-1]["output_tokens"] == reply.usage_metadata["output_tokens"]


def llm_cli(server, tmp_path, *args) -> str:
    """`llm -m scratchlm ARGS` with this server configured as an OpenAI-compatible model."""
    home = tmp_path / "llm"
    home.mkdir(exist_ok=True)
    (home / "extra-openai-models.yaml").write_text(
        f'- model_id: scratchlm\n  model_name: gpt-4o-mini\n  api_base: "{server.url}v1"\n'
    )
    env = {**os.environ, **OFFLINE, "LLM_USER_PATH": str(home)}
    llm = Path(sys.executable).with_name("llm")
    run = subprocess.run(
        [llm, "-m", "scratchlm", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.removesuffix("\n")


def test_llm_command_line_tool(server, model_path, tmp_path):
    """One streamed answer with a system prompt and sampling options, as `llm` sends them."""
    options = ["--temperature", "1.5", "--seed", "4"]
    sampled = scratchlm_generate(model_path, chat_prompt(QUESTIONS[6]), *options)["completion"]
    settings = ["-s", SYSTEM, "-o", "temperature", "1.5", "-o", "seed", "4"]
    assert llm_cli(server, tmp_path, *settings, QUESTIONS[6]) == sampled
