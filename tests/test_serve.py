"""The server's API end to end: `scratchlm serve` runs in its own process on a free local port,
with a small model trained here (tests/serving.py), and is spoken to by the official `openai`
client, by raw HTTP and by headless Chromium. Every answer is checked against `scratchlm generate`,
`generate_batch` or the model's own forward pass for the same prompt and settings."""

import shutil
import tempfile
import threading

import httpx
import numpy as np
import openai
import pytest
from serving import QUESTIONS, chat_prompt, scratchlm_generate, sse_events

from scratchlm import chat_format
from scratchlm.confidence import DONT_KNOW
from scratchlm.layers.activations import log_softmax
from scratchlm.model import load_model
from scratchlm.prompts import conversation_ids

pytestmark = pytest.mark.xdist_group("serve")  # one worker trains the model and runs the servers


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


def test_a_conversation_too_long_for_the_window_drops_its_oldest_turns(client, model_path):
    """The one policy for a context that does not fit (prompts.py): the reply is the one to the
    last turns that fit with room for the answer, as `scratchlm generate` gives it."""
    model = load_model(model_path)
    turns = [(q, "The answer is not known here.") for q in QUESTIONS[:6]]
    messages = chat_format.messages(turns, QUESTIONS[6])
    ids, dropped = conversation_ids(model.tokenizer, messages, model.config.max_seq_len, 16)
    assert dropped > 0 and dropped % 2 == 0  # the window holds 48 tokens: whole turns go
    kept = chat_format.reply_prompt(messages[dropped:])
    expected = scratchlm_generate(model_path, kept, "--max-tokens", "16")
    body = [{"role": role, "content": text} for role, text in messages]
    out = client.chat.completions.create(model="tiny", messages=body, max_tokens=16)
    assert out.choices[0].message.content == expected["completion"].strip()
    assert out.usage.prompt_tokens == len(ids) <= 48 - 16
    long = "why " * 60  # a plain prompt over the window keeps its last tokens
    text = client.completions.create(model="tiny", prompt=long, max_tokens=8)
    assert text.usage.prompt_tokens == 48 - 8


def test_min_confidence_withholds_a_whole_answer_or_gives_it_whole(client, model_path):
    """An extension field, from the `Sampling` setting: below it, "I don't know"; a judged
    answer streams as one piece at its end. Requests without it are unchanged."""
    messages = [{"role": "user", "content": QUESTIONS[3]}]
    plain = client.chat.completions.create(model="tiny", messages=messages)
    sure = scratchlm_generate(model_path, chat_prompt(QUESTIONS[3]), "--json")["confidence"]
    for threshold, expected in ((0.0, plain.choices[0].message.content), (1.0, DONT_KNOW)):
        extra = {"min_confidence": threshold}
        out = client.chat.completions.create(model="tiny", messages=messages, extra_body=extra)
        assert out.choices[0].message.content == expected
        stream = client.chat.completions.create(
            model="tiny", messages=messages, stream=True, extra_body=extra
        )
        pieces = [
            c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
        ]
        assert pieces == [expected]  # held back, then given whole
    assert 0 < sure < 1
    with pytest.raises(openai.BadRequestError, match="min_confidence must be a number in"):
        client.chat.completions.create(
            model="tiny", messages=messages, extra_body={"min_confidence": 2}
        )


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
    from scratchlm.serve.streaming import Answer
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

    from scratchlm.serve.streaming import Mailbox

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


def test_any_model_name_is_the_model_served(client, model_path):
    """One model is served: the name a client was configured with does not matter."""
    expected = scratchlm_generate(model_path, chat_prompt(QUESTIONS[3]))["completion"]
    messages = [{"role": "user", "content": QUESTIONS[3]}]
    for name in ("gpt-3.5-turbo", "scratchlm", ""):
        out = client.chat.completions.create(model=name, messages=messages)
        assert out.choices[0].message.content == expected and out.model == "tiny"


@pytest.mark.parametrize("role", ["system", "developer"])
def test_system_messages_are_left_out_and_said_so(server, model_path, role):
    question = QUESTIONS[4]
    expected = scratchlm_generate(model_path, chat_prompt(question))["completion"]
    system = {"role": role, "content": "You are a helpful assistant."}
    user = {"role": "user", "content": [{"type": "text", "text": question}]}  # content parts
    for stream in (False, True):
        body = {"model": "tiny", "messages": [system, user], "stream": stream}
        r = httpx.post(server.url + "v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 200, r.text
        assert "system messages were left out" in r.headers["x-scratchlm-warning"]
        if stream:
            chunks = sse_events(r.text.splitlines())
            text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        else:
            text = r.json()["choices"][0]["message"]["content"]
        assert text == expected
    plain = httpx.post(server.url + "v1/chat/completions", json={**body, "messages": [user]})
    assert "x-scratchlm-warning" not in plain.headers


def model_logprobs(model, prompt_ids, answer_ids):
    """log-softmax of the model's logits (temperature 1) before each answer token (T, V)."""
    logits = model.logits(np.array([prompt_ids + answer_ids]))[0, len(prompt_ids) - 1 : -1]
    return log_softmax(logits.astype(np.float64))


def test_logprobs_are_the_models_distribution(client, model_path):
    model = load_model(model_path)
    tok = model.tokenizer
    messages = [{"role": "user", "content": QUESTIONS[5]}]
    kwargs = dict(model="tiny", messages=messages, logprobs=True, top_logprobs=3)
    kwargs |= dict(temperature=0.7, seed=2)  # sampled: the logprobs do not depend on it
    whole = client.chat.completions.create(**kwargs)
    content = whole.choices[0].logprobs.content
    answer = [tok.encode(c.token)[0] for c in content]
    assert len(answer) == whole.usage.completion_tokens
    lp = model_logprobs(model, tok.encode(chat_prompt(QUESTIONS[5])), answer)
    np.testing.assert_allclose(
        [c.logprob for c in content], lp[np.arange(len(answer)), answer], atol=1e-4
    )
    for c, row in zip(content, lp, strict=True):
        best = np.argsort(-row)[:3]
        assert [t.token for t in c.top_logprobs] == [
            tok.decode([i], skip_special=False) for i in best
        ]
        np.testing.assert_allclose([t.logprob for t in c.top_logprobs], row[best], atol=1e-4)
    stream = client.chat.completions.create(**kwargs, stream=True)
    streamed = [
        e
        for c in stream
        if c.choices and c.choices[0].logprobs
        for e in c.choices[0].logprobs.content
    ]
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in content]
    # /v1/completions: the legacy shape, the same numbers
    prompt = chat_prompt(QUESTIONS[5])
    out = client.completions.create(model="tiny", prompt=prompt, logprobs=2, max_tokens=6)
    legacy = out.choices[0].logprobs
    greedy = [tok.encode(t)[0] for t in legacy.tokens]
    lp = model_logprobs(model, tok.encode(prompt), greedy)
    np.testing.assert_allclose(legacy.token_logprobs, lp[np.arange(6), greedy], atol=1e-4)
    assert [max(top, key=top.get) for top in legacy.top_logprobs] == legacy.tokens  # greedy
    text = out.choices[0].text
    assert all(
        text[k:].startswith(t) for k, t in zip(legacy.text_offset, legacy.tokens, strict=True)
    )


def test_n_answers_draw_with_seed_plus_their_index(client):
    messages = [{"role": "user", "content": QUESTIONS[6]}]
    kwargs = dict(model="tiny", messages=messages, temperature=3.0, max_tokens=8)
    three = client.chat.completions.create(**kwargs, n=3, seed=11)
    alone = [client.chat.completions.create(**kwargs, seed=11 + i) for i in range(3)]
    texts = [c.message.content for c in three.choices]
    assert texts == [a.choices[0].message.content for a in alone]
    assert len(set(texts)) > 1  # a high temperature: the answers differ
    assert three.usage.completion_tokens == sum(a.usage.completion_tokens for a in alone)
    stream = client.chat.completions.create(**kwargs, n=3, seed=11, stream=True)
    got = ["", "", ""]
    for chunk in stream:
        for choice in chunk.choices:
            got[choice.index] += choice.delta.content or ""
    assert got == texts
    greedy = client.chat.completions.create(model="tiny", messages=messages, n=2)
    assert greedy.choices[0].message.content == greedy.choices[1].message.content


def test_mailbox_sends_first_and_last_events_at_once():
    """A request's first token and its end do not wait for the interval (time to first token)."""
    import asyncio

    from scratchlm.serve.streaming import Mailbox

    async def scenario():
        box, events = Mailbox(asyncio.get_running_loop(), interval=10.0), asyncio.Queue()
        box.put(events, (1, None))
        await asyncio.wait_for(events.get(), 0.5)  # after a pause: at once
        box.put(events, (2, None))  # within the interval: held back ...
        box.put(events, (None, "stop"), urgent=True)  # ... until an urgent one takes it along
        got = [await asyncio.wait_for(events.get(), 0.5), events.get_nowait()]
        assert got == [(2, None), (None, "stop")]

    asyncio.run(scenario())


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
