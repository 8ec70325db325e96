"""Issue 14, case by case: every bad input is one clear error (or a warning where going on is
right), every token file verifies itself, nothing a user made is lost. Each test is named after the
case of the issue it covers; the fuzz tests (test_fuzz.py) cover the same loaders at random."""

import contextlib
import faulthandler
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pexpect
import pytest

from scratchlm import Model, ModelConfig
from scratchlm.chat import ChatSession
from scratchlm.checkpoint import load_checkpoint, save_checkpoint
from scratchlm.cli import main
from scratchlm.corpus import HEADER_BYTES, TokenCorpus, read_corpus
from scratchlm.errors import (
    DataError,
    InputError,
    ModelFileReadError,
    ModelFileWriteError,
    TokenFileError,
    WriteError,
)
from scratchlm.examples import load_examples
from scratchlm.generate import generate_batch, generate_stream
from scratchlm.model import load_model
from scratchlm.modelfile import save_model
from scratchlm.optim import AdamW
from scratchlm.sampling import Sampling, next_tokens
from scratchlm.tokenizers import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = "[model]\nd_model = 16\nn_heads = 2\nd_ff = 32\ndepth = 2\nmax_seq_len = 24\n"
CORPUS = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind.\n" * 60


def write(path: Path, content) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def one_error_line(capsys) -> str:
    """The CLI's stderr must be exactly one `error: ...` line; return it."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def cli_env():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SCRATCHLM_LOG="warning")
    env.pop("PYTHONSTARTUP", None)
    return env


@contextlib.contextmanager
def watchdog(seconds=60):
    """Kill the test process (with a traceback) rather than let a blocking open hang CI."""
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def full_disk(monkeypatch):
    """Atomic writes of files whose name ends in one of the returned list's suffixes fail as on a
    full disk: their temporary file is /dev/full, where every write fails with ENOSPC."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    suffixes: list[str] = []
    real = tempfile.mkstemp

    def mkstemp(suffix=None, prefix=None, dir=None, text=False):
        if prefix and any(prefix.rstrip(".").endswith(s) for s in suffixes):
            return os.open("/dev/full", os.O_WRONLY), os.path.join(dir, f"{prefix}full.tmp")
        return real(suffix=suffix, prefix=prefix, dir=dir, text=text)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return suffixes


# ------------------------------------------------------------------------------ data files


@pytest.mark.parametrize("depth", [1_000, 50_000])
@pytest.mark.parametrize("ext", [".json", ".jsonl"])
def test_json_nested_1000_levels_deep(tmp_path, ext, depth):
    nested = "[" * depth + "]" * depth
    content = f"[{nested}]" if ext == ".json" else f'{{"text": "ok"}}\n{{"text": {nested}}}\n'
    path = write(tmp_path / f"deep{ext}", content)
    with pytest.raises(DataError, match="nested too deeply") as info:
        load_examples(path)
    assert str(info.value).startswith(f"{path}: ")
    assert ("line 2" if ext == ".jsonl" else "line 1 column") in str(info.value)


@pytest.mark.parametrize("ext", [".json", ".jsonl"])
def test_integer_literal_over_4300_digits(tmp_path, ext):
    number = "7" * 5000
    content = f'["a", {number}]' if ext == ".json" else f'{{"text": {number}}}\n'
    path = write(tmp_path / f"big{ext}", content)
    with pytest.raises(DataError, match="an integer of over 4,300 digits") as info:
        load_examples(path)
    assert "column" in str(info.value) and str(path) in str(info.value)
    # A long float is a number Python reads: the usual type error follows
    path = write(tmp_path / "float.json", f'["a", 1.{number}]')
    with pytest.raises(DataError, match="expected a string, got float"):
        load_examples(path)


@pytest.mark.parametrize("role, got", [(["user"], "got array"), ({"a": 1}, "got object")])
def test_chat_role_that_is_a_list_or_object(tmp_path, role, got):
    record = {"messages": [{"role": role, "content": "hi"}]}
    path = write(tmp_path / "chat.jsonl", json.dumps(record) + "\n")
    with pytest.raises(DataError, match=f"line 1: message 0: role must be .* {got}"):
        load_examples(path)


def test_path_with_a_nul_byte(tmp_path):
    bad = str(tmp_path / "a\0b.json")
    for call, error in [
        (lambda: load_examples(bad), DataError),
        (lambda: list(read_corpus(bad)), DataError),
        (lambda: load_model(bad), ModelFileReadError),
        (lambda: save_model(bad, tiny_model()), ModelFileWriteError),
        (lambda: TokenCorpus.build(bad, build_tokenizer("char", ["ab"])), DataError),
    ]:
        with pytest.raises(error, match="NUL byte"):
            call()


@pytest.mark.parametrize(
    "name, content",
    [
        ("a.json", r'["fine", "broken \ud800 text"]'),
        ("a.jsonl", '{"text": "fine"}\n{"text": "a \\udfff b"}\n'),
        ("m.jsonl", '{"messages": [{"role": "user", "content": "q \\ud83d"}]}\n'),
        ("k.jsonl", '{"text": "fine", "\\udc00": 1}\n'),
    ],
)
def test_lone_surrogates_are_refused_at_load_time(tmp_path, name, content):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError, match="lone surrogate .*not Unicode") as info:
        load_examples(path)
    assert str(info.value).startswith(f"{path}: ")


def test_surrogate_pairs_and_escaped_backslashes_are_fine(tmp_path):
    path = write(tmp_path / "a.json", r'["smile \ud83d\ude00", "a \\ud800 is text"]')
    assert load_examples(path) == ["smile \U0001f600 </s>", "a \\ud800 is text </s>"]


def test_lone_surrogates_stop_training_before_it_starts(tmp_path, capsys):
    data = write(tmp_path / "p.json", r'["the cat sat </s>", "bad \udc80 </s>"]')
    out = tmp_path / "out" / "m.safetensors"
    assert main(["train", "--pretrain", str(data), "--output", str(out)]) == 2
    assert "lone surrogate" in one_error_line(capsys)
    assert not out.parent.exists()  # nothing trained, nothing written


def test_undecodable_corpus_file_name_still_saves_the_model(tmp_path, capsys):
    corpus = Path(os.fsdecode(bytes(tmp_path) + b"/play\xff.txt"))  # \udcff in the str
    corpus.write_text(CORPUS)
    config = write(tmp_path / "c.toml", TINY_MODEL)
    out = tmp_path / "m.safetensors"
    argv = ["train", "--corpus", str(corpus), "--config", str(config), "--steps", "2"]
    assert main([*argv, "--eval-every", "2", "--batch-size", "2", "--output", str(out)]) == 0
    assert load_model(out) is not None
    assert "play\ufffd.txt" in json.dumps(load_model_metadata(out), ensure_ascii=False)


def load_model_metadata(path):
    from scratchlm.modelfile import read_model_file

    return read_model_file(path).metadata


@pytest.mark.parametrize(
    "toml, fragment",
    [
        ('[train]\nlr = "fast"', "training option lr must be a number > 0, got 'fast'"),
        ("[train]\nweight_decay = nan", "weight_decay must be a finite number"),
        ('[model]\nhalt_eps = "x"', "'halt_eps' must be a number"),
        ("model = 3", "model must be a table"),
        ("a = " + "[" * 3000 + "]" * 3000, "nested too deeply"),
        ("[model]\nd_model = " + "9" * 5000, "invalid TOML"),
        ("[model]\nd_model = 1048576\nn_heads = 1\nd_ff = 1048576", "over the limit of"),
    ],
)
def test_config_files_give_one_error_line(tmp_path, capsys, toml, fragment):
    data = write(tmp_path / "p.json", '["the cat sat </s>"]')
    config = write(tmp_path / "c.toml", toml + "\n")
    argv = ["train", "--pretrain", str(data), "--config", str(config), "--epochs", "1"]
    assert main([*argv, "--output", str(tmp_path / "m.safetensors")]) == 2
    assert fragment in one_error_line(capsys)


# ------------------------------------------------------------------------------ token caches


@pytest.fixture
def corpus(tmp_path):
    path = write(tmp_path / "corpus.txt", CORPUS)
    tok = build_tokenizer("char", [CORPUS])
    tc = TokenCorpus.build(path, tok)
    return path, tok, tc.path, tok.encode(CORPUS)


def all_tokens(tc: TokenCorpus) -> list[int]:
    return [*tc.train.tolist(), *tc.val.tolist()]


def rebuilt_with_a_warning(corpus, caplog, damage) -> TokenCorpus:
    path, tok, cache, ids = corpus
    damage(cache)
    with caplog.at_level(logging.WARNING, logger="scratchlm"):
        tc = TokenCorpus.build(path, tok)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and str(cache) in warned[0] and "rebuilding it" in warned[0]
    assert tc.path == cache and all_tokens(tc) == ids
    return tc


def edit_bytes(edit):
    def damage(cache: Path):
        data = bytearray(cache.read_bytes())
        cache.write_bytes(bytes(edit(data)))

    return damage


@pytest.mark.parametrize(
    "damage",
    [
        edit_bytes(lambda d: d[:-3]),  # truncated
        edit_bytes(lambda d: b""),  # zero-length
        edit_bytes(lambda d: d[:HEADER_BYTES]),  # the header alone
        edit_bytes(lambda d: d[:100]),  # less than the header
    ],
    ids=["truncated", "zero-length", "header-only", "torn-header"],
)
def test_truncated_or_zero_length_cache_is_rebuilt(corpus, caplog, damage):
    rebuilt_with_a_warning(corpus, caplog, damage)


def test_directory_in_place_of_the_cache_is_an_error_naming_the_fix(corpus):
    path, tok, cache, _ = corpus
    cache.unlink()
    cache.mkdir()
    with pytest.raises(WriteError, match="remove it and run again") as info:
        TokenCorpus.build(path, tok)
    assert str(cache) in str(info.value)
    with pytest.raises(TokenFileError, match="is a directory"):
        TokenCorpus(cache, tok.vocab_size)


def overwrite_ids(data):
    data[HEADER_BYTES + 40 : HEADER_BYTES + 60] = bytes(20)
    return data


def flip_low_bits(data):
    for i in range(HEADER_BYTES + 7, len(data), 977):
        data[i] ^= 1
    return data


def half_with_a_fitting_header(data):
    header = json.loads(data[:HEADER_BYTES])
    n = header["n_tokens"] // 2
    header["n_tokens"] = n
    return json.dumps(header).encode().ljust(HEADER_BYTES) + data[HEADER_BYTES:][: 2 * n]


def half(data):
    return data[: len(data) // 2]


@pytest.mark.parametrize("edit", [half, overwrite_ids, flip_low_bits, half_with_a_fitting_header])
def test_cache_truncated_to_half_or_with_ids_overwritten_or_bits_flipped_is_rebuilt(
    corpus, caplog, edit
):
    rebuilt_with_a_warning(corpus, caplog, edit_bytes(edit))


def test_foreign_cache_under_this_name_is_rebuilt(corpus, caplog, tmp_path):
    other = write(tmp_path / "other.txt", CORPUS.upper())
    foreign = TokenCorpus.build(other, corpus[1]).path
    rebuilt_with_a_warning(corpus, caplog, lambda cache: shutil.copyfile(foreign, cache))


def test_corpus_edited_in_place_with_same_size_and_mtime_gets_a_new_cache(corpus):
    path, tok, cache, _ = corpus
    st = path.stat()
    edited = CORPUS.replace("question", "QUESTION")
    path.write_text(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    tc = TokenCorpus.build(path, tok)
    assert tc.path != cache and all_tokens(tc) == tok.encode(edited)


def test_out_of_range_ids_name_the_cache_and_the_remedy(corpus):
    _, tok, cache, _ = corpus
    with pytest.raises(TokenFileError) as info:
        TokenCorpus(cache, vocab_size=10)
    message = str(info.value)
    assert message.startswith(f"{cache}: ") and "out of range for vocab_size 10" in message
    assert "delete it and run again" in message


def test_corpus_training_with_a_damaged_cache_warns_and_trains(tmp_path, capsys):
    corpus = write(tmp_path / "play.txt", CORPUS)
    config = write(tmp_path / "c.toml", TINY_MODEL)
    argv = ["--log-level", "warning", "train", "--corpus", str(corpus), "--config", str(config)]
    argv += ["--steps", "2", "--eval-every", "2", "--batch-size", "2"]
    assert main([*argv, "--output", str(tmp_path / "a.safetensors")]) == 0
    (cache,) = tmp_path.glob("play.txt.*.tokens.bin")
    edit_bytes(flip_low_bits)(cache)
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path / "b.safetensors")]) == 0
    err = capsys.readouterr().err
    assert "level=warning" in err and "rebuilding it" in err and "Traceback" not in err
    a, b = load_model(tmp_path / "a.safetensors"), load_model(tmp_path / "b.safetensors")
    assert all((a.params[n] == b.params[n]).all() for n in a.params)  # the same tokens


# ------------------------------------------------------------------------------ --resume


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """An example-set checkpoint (stopped in the chat phase) and a corpus checkpoint."""
    d = tmp_path_factory.mktemp("resume")
    config = write(d / "c.toml", TINY_MODEL)
    pre = write(d / "p.json", '["the cat sat on the mat </s>", "a dog ran </s>"]')
    chat = write(d / "c.json", '["User: hi Assistant: hello </s>"]')
    corpus = write(d / "play.txt", CORPUS)
    common = ["--config", str(config), "--batch-size", "2"]
    argv = ["train", "--pretrain", str(pre), "--chat", str(chat), "--epochs", "1"]
    assert main([*argv, *common, "--output", str(d / "ex.safetensors")]) == 0
    argv = ["train", "--corpus", str(corpus), "--steps", "2", "--eval-every", "2"]
    assert main([*argv, *common, "--output", str(d / "co.safetensors")]) == 0
    return d


RESUME_MISTAKES = {
    "example checkpoint with --corpus": (
        ["--corpus", "play.txt", "--resume", "ex.ckpt.safetensors"],
        "checkpoint of example-set training (phase 'chat'): resume it with the --pretrain/--chat",
    ),
    "corpus checkpoint with --pretrain/--chat": (
        ["--pretrain", "p.json", "--chat", "c.json", "--resume", "co.ckpt.safetensors"],
        "checkpoint of corpus training: resume it with --corpus",
    ),
    "chat checkpoint without --chat files": (
        ["--pretrain", "p.json", "--resume", "ex.ckpt.safetensors"],
        "stopped in the 'chat' phase, but this command has no --chat files",
    ),
    "checkpoint alone": (
        ["--resume", "ex.ckpt.safetensors"],
        "stopped in the 'chat' phase, but this command has no --chat files",
    ),
    "missing data file": (
        ["--pretrain", "gone.json", "--resume", "ex.ckpt.safetensors"],
        "gone.json: no such file",
    ),
    "missing corpus": (["--corpus", "gone.txt", "--resume", "co.ckpt.safetensors"], "gone.txt"),
    "missing checkpoint": (["--corpus", "play.txt", "--resume", "gone.ckpt"], "gone.ckpt"),
    "model file, not a checkpoint": (
        ["--corpus", "play.txt", "--resume", "co.safetensors"],
        "not a training checkpoint",
    ),
}


@pytest.mark.parametrize("case", sorted(RESUME_MISTAKES))
def test_resume_used_the_wrong_way(checkpoints, capsys, case):
    args, fragment = RESUME_MISTAKES[case]
    args = [str(checkpoints / a) if not a.startswith("--") else a for a in args]
    out = checkpoints / "never.safetensors"
    assert main(["--log-level", "warning", "train", *args, "--output", str(out)]) == 2
    assert fragment in one_error_line(capsys)
    assert not out.exists()


def test_resume_the_right_way_still_works(checkpoints, capsys):
    d = checkpoints
    argv = ["train", "--pretrain", str(d / "p.json"), "--chat", str(d / "c.json")]
    argv += ["--epochs", "1", "--chat-epochs", "2", "--batch-size", "2"]
    argv += ["--resume", str(d / "ex.ckpt.safetensors"), "--output", str(d / "again.safetensors")]
    assert main(argv) == 0
    assert load_checkpoint(d / "again.ckpt.safetensors")[2]["epoch"] == 2


# ------------------------------------------------------------------------------ disk full


def train_pretrain(tmp_path, *extra):
    data = write(tmp_path / "p.json", '["the cat sat on the mat </s>", "a dog ran </s>"]')
    config = write(tmp_path / "c.toml", TINY_MODEL)
    out = tmp_path / "m.safetensors"
    argv = ["--log-level", "warning", "train", "--pretrain", str(data), "--config", str(config)]
    return main([*argv, "--epochs", "2", "--output", str(out), *extra]), out


def test_metrics_append_on_a_full_disk_warns_and_training_goes_on(tmp_path, capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    (tmp_path / "m.metrics.jsonl").symlink_to("/dev/full")
    code, out = train_pretrain(tmp_path)
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    assert err.count("level=warning") == 1  # once, then the metrics are no longer written
    assert "m.metrics.jsonl: cannot write the file: No space left on device" in err
    assert load_model(out) is not None


def test_loss_plot_on_a_full_disk_keeps_the_saved_model(tmp_path, capsys, full_disk):
    pytest.importorskip("matplotlib")
    full_disk.append(".loss.png")
    code, out = train_pretrain(tmp_path)
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    assert "m.loss.png: cannot write the file: No space left on device" in err
    assert "the model is saved" in err
    assert load_model(out) is not None and not (tmp_path / "m.loss.png").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_model_write_on_a_full_disk_is_one_error_and_keeps_the_checkpoint(
    tmp_path, capsys, full_disk
):
    full_disk.append("m.safetensors")
    code, out = train_pretrain(tmp_path)
    assert code == 2
    assert "m.safetensors: cannot write the file: No space left on device" in one_error_line(capsys)
    assert not out.exists()
    assert load_checkpoint(tmp_path / "m.ckpt.safetensors")[2]["epoch"] == 2


def test_token_file_write_on_a_full_disk_is_one_error_and_leaves_no_file(
    tmp_path, capsys, full_disk
):
    full_disk.append(".tokens.bin")
    corpus = write(tmp_path / "play.txt", CORPUS)
    config = write(tmp_path / "c.toml", TINY_MODEL)
    argv = ["train", "--corpus", str(corpus), "--config", str(config), "--steps", "2"]
    assert main([*argv, "--output", str(tmp_path / "m.safetensors")]) == 2
    assert "cannot write the file: No space left on device" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "play.txt"]


def test_unwritable_output_folder_is_one_error(tmp_path, capsys):
    blocker = write(tmp_path / "file", "x")
    code, _ = train_pretrain(tmp_path, "--output", str(blocker / "m.safetensors"))
    assert code == 2
    assert "cannot create the output folder" in one_error_line(capsys)


# ------------------------------------------------------------------------------ FIFOs


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, tiny_model())
    return path


def tiny_model(never_ends=False) -> Model:
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "dog",
        "ran",
        "User:",
        "Assistant:",
        "hi",
        "hello",
    ]
    tok = build_tokenizer("word", [" ".join(words)])
    cfg = ModelConfig(vocab_size=tok.vocab_size, d_model=16, n_heads=2, d_ff=32, max_seq_len=24)
    model = Model(cfg, tok, seed=0)
    if never_ends:  # the final norm outputs all ones, so the logits are head.w's column sums
        model.params["norm_f.gamma"][:] = 0.0
        model.params["norm_f.beta"][:] = 1.0
        model.params["head.w"][:] = 0.0
        model.params["head.w"][:, tok.encode("cat")[0]] = 1.0  # greedy: "cat cat cat ..." forever
    return model


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize(
    "argv",
    [
        ["info", "{fifo}"],
        ["eval", "{fifo}", "{data}"],
        ["generate", "{fifo}", "hello"],
        ["chat", "{fifo}"],
        ["eval", "{model}", "{fifo}"],
        ["train", "--pretrain", "{fifo}"],
        ["train", "--corpus", "{fifo}"],
        ["train", "--pretrain", "{data}", "--config", "{fifo}"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_fifo_given_as_a_file_fails_at_once(tmp_path, capsys, model_file, argv):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    data = write(tmp_path / "d.json", '["User: hi Assistant: hello </s>"]')
    names = {"fifo": fifo, "data": data, "model": model_file}
    with watchdog():
        assert main([a.format(**names) for a in argv]) == 2
    assert f"{fifo}: is a FIFO (named pipe), not a file" in one_error_line(capsys)


# ------------------------------------------------------------------------------ sampling


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
    model = tiny_model()
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
    model = tiny_model()
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


def test_prompt_that_is_not_unicode_is_one_error(model_file):
    proc = subprocess.run(
        [sys.executable, "-m", "scratchlm", "generate", str(model_file), b"hi \xff there"],
        env=cli_env(),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        "error: the prompt is not valid Unicode: a lone surrogate (\\udcff) at character 3"
    ]


def test_chat_message_that_is_not_unicode_is_refused():
    with pytest.raises(InputError, match="your message is not valid Unicode"):
        ChatSession(tiny_model()).reply("hi \udcff")


# ------------------------------------------------------------------------------ the chat REPL


@pytest.fixture(scope="module")
def endless_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("endless") / "endless.safetensors"
    save_model(path, tiny_model(never_ends=True))
    return path


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


# ------------------------------------------------------------------------------ temp files


def test_checkpoint_temp_file_left_by_a_kill_is_removed_by_the_next_write(tmp_path, corpus):
    model = tiny_model()
    leftovers = {
        "m.safetensors": lambda p: save_model(p, model),
        "m.json": lambda p: save_model(p, model),
        "m.ckpt.safetensors": lambda p: save_checkpoint(
            p, model, AdamW(model.params, lr=1e-3).state_dict(), {}
        ),
    }
    for name, save in leftovers.items():
        stale = write(tmp_path / f".{name}.k1ll3d.tmp", b"half a file")
        other = write(tmp_path / f".other.{name}.x.tmp", b"not ours")
        save(tmp_path / name)
        assert not stale.exists() and other.exists(), name
    path, tok, cache, _ = corpus
    stale = write(cache.parent / f".{cache.name}.k1ll3d.tmp", b"half")
    cache.unlink()
    TokenCorpus.build(path, tok)
    assert not stale.exists()
