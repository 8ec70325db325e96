"""Sampling (sampling.py): the filters, seeds and the extremes of every setting, which behave as
their limits without a warning, also through the command line."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from helpers import cli_env, one_error_line
from models import word_model

from scratchlm.chat import ChatSession
from scratchlm.cli import main
from scratchlm.generate import generate_batch, generate_stream
from scratchlm.sampling import Sampling, next_tokens

# ------------------------------------------------------------------------------ extremes


EXTREMES = [
    {"temperature": 1e-300},
    {"temperature": 5e-324},
    {"temperature": 1e300},
    {"temperature": 1.7976931348623157e308},
    {"temperature": 1.0, "top_p": 1e-300},
    {"temperature": 1e300, "top_p": 1e-300},
    {"temperature": 5e-324, "top_p": 5e-324, "top_k": 1},
    {"temperature": 1.0, "top_k": 10**12},
    {"temperature": 1e300, "top_k": 10**12, "top_p": 1.0},
    {"max_new_tokens": 0},
    {"max_new_tokens": 0, "temperature": 1e-300},
    {"beam": 3, "max_new_tokens": 5},
]


@pytest.mark.parametrize("settings", EXTREMES, ids=str)
def test_sampling_extremes_give_no_warning(settings):
    model = word_model()
    prompt = model.tokenizer.encode("the cat")
    sampling = Sampling(**{"max_new_tokens": 12, "seed": 1, **settings})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what `python -W error` does
        one = generate_batch(model, [prompt], sampling)[0]
        assert len(generate_batch(model, [prompt, prompt[:1]], sampling)) == 2
        if sampling.beam == 1:
            assert list(generate_stream(model, prompt, sampling)) == one
        session = ChatSession(model, replace_beam(sampling))
        "".join(session.reply("hi"))


def replace_beam(sampling):
    from dataclasses import replace

    return replace(sampling, beam=1)


@pytest.mark.parametrize(
    "settings",
    [{"temperature": 1e-300}, {"temperature": 5e-324}, {"temperature": 1.0, "top_p": 1e-300}],
)
def test_tiny_temperature_or_top_p_is_greedy_not_empty(settings):
    model = word_model()
    prompt = model.tokenizer.encode("the cat")
    greedy = generate_batch(model, [prompt], Sampling(max_new_tokens=12))
    assert greedy[0]  # an untrained model of this seed does not stop at once
    assert generate_batch(model, [prompt], Sampling(max_new_tokens=12, **settings)) == greedy


def test_huge_temperature_is_uniform_and_keeps_the_ranking_for_top_p():
    logits = np.array([[50.0, 0.0, -50.0, 10.0]], dtype=np.float32).repeat(4000, axis=0)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = next_tokens(logits, Sampling(temperature=1e300), rng)
        counts = np.bincount(drawn, minlength=4)
        assert counts.min() > 900 and counts.max() < 1100  # 1000 each expected
        tiny_p = next_tokens(logits, Sampling(temperature=1e300, top_p=1e-300), rng)
        assert (tiny_p == 0).all()  # the most likely token, not a tie broken by id


@pytest.mark.parametrize("beam", ["0", "-5"])
def test_beam_below_1_is_refused(model_file, capsys, beam):
    assert main(["generate", str(model_file), "hi", "--beam", beam]) == 2
    assert f"beam must be an integer >= 1, got {beam}" in one_error_line(capsys)


def test_generate_cli_prints_no_warning_for_any_option_value(model_file):
    """The real process, as `python -W error`: a warning would be an exception there."""
    runs = [
        ["--temperature", "1e-300"],
        ["--temperature", "5e-324", "--top-p", "1e-300"],
        ["--temperature", "1e300", "--top-k", "1000000000000"],
        ["--temperature", "1e300", "--top-p", "1e-300", "--json"],
        ["--max-tokens", "0"],
        ["--beam", "4", "--max-tokens", "6"],
    ]
    script = (
        "import sys; from scratchlm.cli import main\n"
        f"codes = [main(['generate', {str(model_file)!r}, 'the cat', *a]) for a in {runs!r}]\n"
        "sys.exit(max(codes))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


# ------------------------------------------------------------------------------ one source


def test_every_setting_reaches_the_command_line_the_chat_and_the_server():
    """`Sampling` is the one source of the settings: each is an option of `generate`, with its
    help and default; a /command of the chat (where it has one); a field of a server request."""
    from scratchlm.chat import HELP, SAMPLING_COMMANDS
    from scratchlm.cli import build_parser
    from scratchlm.sampling import setting_name, settings
    from scratchlm.serve.schemas import ChatRequest, CompletionRequest

    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    options = {a.option_strings[0]: a for a in generate._actions if a.option_strings}
    for f in settings():
        name = setting_name(f)
        option = options["--" + name.replace("_", "-")]
        assert option.default == f.default and f.metadata["help"] in option.help
        assert (name in SAMPLING_COMMANDS) == f.metadata["chat"]
        if f.metadata["chat"]:
            assert f"/{name} [" in HELP
        assert name in ChatRequest.model_fields and name in CompletionRequest.model_fields
    args = generate.parse_args(
        ["m", "p", "--top-p", "off", "--max-tokens", "9", "--min-confidence", "0.5"]
    )
    assert (args.top_p, args.max_new_tokens, args.min_confidence) == (None, 9, 0.5)
