"""Chat: the conversation template and window, settings commands, streaming text, and the real
`scratchlm chat` and `scratchlm generate` processes (chat driven through a pseudo-terminal)."""

import contextlib
import json
import subprocess
import sys
import time

import pexpect
import pytest
from helpers import ROOT, cli_env
from models import word_model

from scratchlm import Model, ModelConfig
from scratchlm.chat import ChatSession
from scratchlm.chat_format import prompt as render
from scratchlm.chat_format import turns
from scratchlm.confidence import DONT_KNOW, answer_logprobs, confidence
from scratchlm.errors import InputError
from scratchlm.modelfile import save_model
from scratchlm.sampling import Sampling
from scratchlm.tokenizers import WordTokenizer

CHAT_DATA = json.loads((ROOT / "data" / "chat.json").read_text())


@pytest.fixture(scope="module")
def model():
    """A tiny untrained model with the word tokenizer of the bundled chat set."""
    tok = WordTokenizer.build(CHAT_DATA)
    cfg = ModelConfig(vocab_size=tok.vocab_size, d_model=16, n_heads=2, d_ff=32, max_seq_len=48)
    return Model(cfg, tokenizer=tok, seed=0)


def greedy_answer(model, question):
    return "".join(ChatSession(model).reply(question))


# ------------------------------------------------------------------------------ the conversation


def test_template_matches_the_training_data():
    assert render([], "Why?") == "User: Why? Assistant:"
    assert render([("Hi", "Hello.")], "Why?") == "User: Hi Assistant: Hello. User: Why? Assistant:"
    q, a = CHAT_DATA[0].removesuffix(" </s>").split(" Assistant: ")
    assert render([], q.removeprefix("User: ")) + " " + a + " </s>" == CHAT_DATA[0]


def test_turns_read_back_what_the_template_wrote():
    conv = [("Hi", "Hello."), ("And Japan?", "Tokyo is the capital of Japan.")]
    text = render(conv[:1], conv[1][0]) + " " + conv[1][1] + " </s>"
    assert turns(text) == conv
    assert turns("User: Why? Assistant:") == [("Why?", "")]


def test_reply_is_the_greedy_generation_and_joins_the_conversation(model):
    session = ChatSession(model)
    question = "What causes rain?"
    ids = model.tokenizer.encode(render([], question))
    expected = model.tokenizer.decode(model.generate(ids, max_new_tokens=64))
    assert "".join(session.reply(question)) == expected
    assert session.turns == [(question, expected)]


def test_without_history_each_question_stands_alone(model):
    session = ChatSession(model, history=False)
    session.turns = [("Hi", "Hello.")]
    assert session.prompt_ids("Why?") == model.tokenizer.encode("User: Why? Assistant:")
    session.command("/history on")
    assert session.prompt_ids("Why?") == model.tokenizer.encode(
        "User: Hi Assistant: Hello. User: Why? Assistant:"
    )


def test_oldest_turns_are_forgotten_to_leave_room_for_the_answer(model):
    session = ChatSession(model, Sampling(max_new_tokens=10), history=True)
    session.turns = [(f"Question number {i}?", "An answer of some words.") for i in range(5)]
    ids = session.prompt_ids("What causes rain?")
    assert len(ids) <= 48 - 10
    assert 0 < len(session.turns) < 5
    assert session.turns[-1][0] == "Question number 4?"  # the newest stay


def test_over_long_and_empty_questions(model):
    session = ChatSession(model)
    with pytest.raises(InputError, match="10,001 characters; the limit is 10,000"):
        session.reply("x" * 10_001)
    with pytest.raises(InputError, match="empty"):
        session.reply("   ")
    assert session.turns == []


def test_settings_commands(model):
    session = ChatSession(model)
    assert session.history  # on by default
    assert session.command("/temperature 0.7") == "temperature=0.7"
    assert session.command("/top_k 40") == "top_k=40"
    assert session.command("/top_p 0.9") == "top_p=0.9"
    assert session.command("/max_tokens 12") == "max_tokens=12"
    assert session.command("/history off") == "history=off" and not session.history
    assert session.command("/history on") == "history=on"
    assert session.sampling == Sampling(temperature=0.7, top_k=40, top_p=0.9, max_new_tokens=12)
    assert session.correct and session.sampling.min_confidence is None  # the session's defaults
    assert session.history
    assert session.command("/top_k off") == "top_k=off"
    assert session.command("/temperature") == "temperature=0.7"
    assert "top_k=off" in session.command("/settings")
    assert session.command("/temperature -1").startswith("error: temperature must be a number >= 0")
    assert session.command("/top_p 2").startswith("error: top_p must be a number in (0, 1]")
    assert session.command("/max_tokens many") == "error: max_tokens takes an integer, got 'many'"
    assert session.command("/history maybe") == "error: history takes on or off"
    assert session.command("/correct off") == "correct=off" and not session.correct
    assert session.command("/correct maybe") == "error: correct takes on or off"
    assert session.command("/min_confidence 0.4") == "min_confidence=0.4"
    assert session.command("/min_confidence off") == "min_confidence=off"
    assert session.command("/min_confidence 2").startswith("error: min_confidence must be")
    settings = session.command("/settings")
    assert "correct=off" in settings and "min_confidence=off" in settings
    assert session.sampling.temperature == 0.7  # unchanged by the errors
    assert session.command("/nope").startswith("unknown command /nope")
    assert "/reset" in session.command("/help")
    assert session.command("/exit") is None and session.command("/quit") is None


def test_reset_and_seeded_sampling(model):
    a = ChatSession(model, Sampling(temperature=1.0, seed=5))
    b = ChatSession(model, Sampling(temperature=1.0, seed=5))
    first = ["".join(s.reply("What causes rain?")) for s in (a, b)]
    assert first[0] == first[1] and len(a.turns) == 1
    assert a.command("/reset") == "(conversation forgotten)" and a.turns == []


def test_misspelt_words_are_read_as_known_ones_and_said_so(model):
    session = ChatSession(model)
    typed = "What causes rian?"  # "rain": two letters swapped
    answer = "".join(session.reply(typed))
    assert session.question_note == "(read rian -> rain; /correct off sends the words as typed)"
    assert session.turns == [("What causes rain?", answer)]
    assert answer == "".join(ChatSession(model).reply("What causes rain?"))
    session.command("/correct off")
    "".join(session.reply(typed))
    assert session.question_note is None and session.turns[-1][0] == typed


def test_an_unsure_answer_becomes_i_dont_know(model):
    question = "What causes rain?"
    answer = "".join(ChatSession(model).reply(question))
    ids = model.tokenizer.encode(render([], question))
    tokens = model.generate(ids, max_new_tokens=64)
    sure = confidence(answer_logprobs(model, [ids], [tokens], [len(tokens) < 64])[0])
    below = ChatSession(model, Sampling(min_confidence=sure - 1e-6))
    assert "".join(below.reply(question)) == answer and below.answer_note is None
    above = ChatSession(model, Sampling(min_confidence=sure + 1e-6))
    assert "".join(above.reply(question)) == DONT_KNOW
    assert above.answer_note.startswith(f"(the model's answer had confidence {sure:.2f}")
    assert above.turns == [(question, DONT_KNOW)]  # what the user saw joins the conversation


def test_a_model_without_tokenizer_cannot_chat():
    with pytest.raises(InputError, match="no tokenizer"):
        ChatSession(Model(ModelConfig(vocab_size=10)))


# ----------------------------------------------------------------------------- the real processes


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):

    path = tmp_path_factory.mktemp("chat") / "tiny.safetensors"
    save_model(path, model)
    return path


def send_long_line(child, line, chunk=512):
    """Type a long line in pieces, reading the terminal's echo in between so neither side blocks."""
    for i in range(0, len(line), chunk):
        child.send(line[i : i + chunk])
        with contextlib.suppress(pexpect.TIMEOUT):
            child.read_nonblocking(1 << 20, timeout=0.05)
    child.sendline("")


def test_chat_through_a_terminal(model, model_file):
    # The same conversation in-process gives the answers to expect, token for token.
    mirror = ChatSession(model, Sampling(seed=3))
    first = "".join(mirror.reply("What causes rain?"))
    mirror.command("/temperature 0.7")
    mirror.command("/history off")
    second = "".join(mirror.reply("Why is the sky blue?"))
    mirror.command("/reset")
    third = "".join(mirror.reply("What causes rain?"))
    # A question in the user's own words, then a follow-up that only the history explains (short
    # answers, so that the earlier turn fits the 48-token window next to the new one).
    mirror.command("/temperature 0")
    mirror.command("/max_tokens 8")
    mirror.command("/history on")
    paraphrase = "".join(mirror.reply("so what makes it rain"))
    follow_up = "".join(mirror.reply("Why?"))
    assert first and second and third and paraphrase and follow_up
    alone = ChatSession(model, Sampling(max_new_tokens=8), history=False)
    assert follow_up != "".join(alone.reply("Why?"))  # so equal answers prove history was used

    child = pexpect.spawn(
        sys.executable,
        ["-m", "scratchlm", "chat", str(model_file), "--seed", "3", "--min-confidence", "off"],
        env=cli_env(),
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 250),
    )
    child.delaybeforesend = None  # pexpect's 50 ms before each send: each line waits for a prompt
    try:
        child.expect("Ask a question")

        def ask(question):
            child.expect_exact("User: ")
            child.sendline(question)
            child.expect_exact("Assistant: ")
            child.expect_exact("\r\n")
            return child.before

        assert ask("What causes rain?") == first
        child.expect_exact("User: ")
        child.sendline("/temperature 0.7")
        child.expect_exact("temperature=0.7")
        child.expect_exact("User: ")
        child.sendline("/history off")
        child.expect_exact("history=off")
        assert ask("Why is the sky blue?") == second
        child.expect_exact("User: ")
        child.sendline("/reset")
        child.expect_exact("(conversation forgotten)")
        assert ask("What causes rain?") == third
        child.expect_exact("User: ")
        child.sendline("/temperature 0")
        child.expect_exact("temperature=0.0")
        child.expect_exact("User: ")
        child.sendline("/max_tokens 8")
        child.expect_exact("max_tokens=8")
        child.expect_exact("User: ")
        child.sendline("/history on")
        child.expect_exact("history=on")
        assert ask("so what makes it rain") == paraphrase
        assert ask("Why?") == follow_up
        child.expect_exact("User: ")
        send_long_line(child, "x" * 10_001)
        child.expect_exact("error: your message has 10,001 characters; the limit is 10,000")
        child.expect_exact("User: ")  # the session goes on
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_chat_quits_on_ctrl_d(model_file):
    child = pexpect.spawn(
        sys.executable,
        ["-m", "scratchlm", "chat", str(model_file)],
        env=cli_env(),
        encoding="utf-8",
        timeout=30,
    )
    child.expect_exact("User: ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "scratchlm", *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_generate_json(model, model_file):
    prompt = "User: What causes rain? Assistant:"
    result = run_cli("generate", str(model_file), prompt, "--json", "--max-tokens", "12")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    ids = model.tokenizer.encode(prompt)
    tokens = model.generate(ids, max_new_tokens=12)
    sure = confidence(answer_logprobs(model, [ids], [tokens], [len(tokens) < 12])[0])
    assert out == {
        "prompt": prompt,
        "completion": model.tokenizer.decode(tokens),
        "tokens": len(tokens),
        "confidence": round(sure, 6),
    }
    streamed = run_cli("generate", str(model_file), prompt, "--max-tokens", "12")
    assert streamed.stdout == out["completion"] + "\n"
    # above the answer's confidence: "I don't know"; below it: the answer
    for threshold, completion in ((sure * 1.01, DONT_KNOW), (sure * 0.99, out["completion"])):
        argv = ["--max-tokens", "12", "--min-confidence", str(threshold)]
        judged = run_cli("generate", str(model_file), prompt, *argv, "--json")
        assert json.loads(judged.stdout)["completion"] == completion
        assert json.loads(judged.stdout)["withheld"] == (completion == DONT_KNOW)
        assert run_cli("generate", str(model_file), prompt, *argv).stdout == completion + "\n"


def test_cli_errors_are_one_line(model_file, tmp_path):
    missing = run_cli("chat", str(tmp_path / "nope.safetensors"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")
    assert "Traceback" not in missing.stderr
    bad = run_cli("generate", str(model_file), "Hi", "--top-p", "2")
    assert bad.returncode == 2
    assert bad.stderr == "error: top_p must be a number in (0, 1] (or None), got 2.0\n"
    bad = run_cli("chat", str(model_file), "--min-confidence", "1.5")
    assert bad.returncode == 2 and bad.stderr.startswith("error: min_confidence must be")
    long = run_cli("generate", str(model_file), "x" * 10_001)
    assert long.returncode == 2 and "the limit is 10,000" in long.stderr


# ------------------------------------------------------------------------------ text that is not Unicode, and Ctrl-C


def test_chat_message_that_is_not_unicode_is_refused():
    with pytest.raises(InputError, match="your message is not valid Unicode"):
        ChatSession(word_model()).reply("hi \udcff")


# ------------------------------------------------------------------------------ the chat REPL


def test_chat_survives_any_burst_of_ctrl_c(endless_model_file):
    """Bursts of Ctrl-C while answering, while reading a line and right after Enter: the session
    stops the answer each time and goes on; only /exit ends it, with status 0 and no traceback.
    Every answer of this model is endless, so only Ctrl-C can end one.

    To land presses inside the code that handles the previous one (where Python's default handler
    ended the session, with a traceback from logging), Ctrl-S first stops the terminal's output:
    every write then blocks, " [stopped]" included, until Ctrl-C (which restarts output) or Ctrl-Q.
    """
    child = pexpect.spawn(
        sys.executable,
        [
            "-W",
            "error",
            "-m",
            "scratchlm",
            "chat",
            str(endless_model_file),
            "--max-tokens",
            "1000000000",
            "--min-confidence",  # answers stream (a judged answer is shown when it is whole)
            "off",
        ],
        env=cli_env(),
        encoding="utf-8",
        timeout=30,
    )
    seen = []

    def back_at_the_prompt():
        """Read until the prompt comes back; a press that found no answer running was ignored
        (as it should be), so press again as a user would, a few times at most."""
        for _ in range(20):
            if child.expect_exact(["User: ", pexpect.TIMEOUT], timeout=0.5) == 0:
                seen.append(child.before)
                return
            seen.append(child.before)
            child.send("\x03")
        raise AssertionError("Ctrl-C did not bring the prompt back")

    def blocked_bursts():
        child.send("\x13")  # Ctrl-S: output stops, the next write blocks
        time.sleep(0.2)
        for _ in range(2):
            child.send("\x03\x13")  # interrupt, and stop the output again at once
            time.sleep(0.2)
        child.send("\x03\x11")  # Ctrl-Q: output flows again

    def ask():
        child.sendline("the cat")
        child.expect_exact("Assistant: ")
        child.expect_exact("cat cat")  # the answer is streaming

    try:
        child.expect_exact("User: ")
        ask()
        blocked_bursts()  # while answering
        back_at_the_prompt()
        blocked_bursts()  # while reading a line
        back_at_the_prompt()
        for burst, gap in [(3, 0.0), (5, 0.005)]:
            ask()
            for _ in range(burst):
                child.send("\x03")
                time.sleep(gap)
            back_at_the_prompt()
            child.send("\x03\x03\x03")  # a burst while reading a line
            time.sleep(0.05)
            child.sendline("the cat")  # ... and right after Enter
            child.send("\x03\x03")
            back_at_the_prompt()
        child.sendline("/settings")
        child.expect_exact("temperature=0.0")
        child.expect_exact("User: ")
        seen.append(child.before)
        child.sendline("/exit")
        child.expect(pexpect.EOF)
        seen.append(child.before)
    finally:
        child.close()
    output = "".join(seen)
    assert output.count("[stopped]") >= 3
    assert "Traceback" not in output and "Warning" not in output
    assert child.exitstatus == 0
