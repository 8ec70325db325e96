"""Token corpora (corpus.py): a text read in streaming chunks, tokenized once into a
self-verifying memory-mapped token file, windows sampled from its two splits; every damaged token
file is rebuilt or named, never trusted."""

import functools
import json
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import CORPUS, TINY_TOML, write
from mutate import SEED, dumps, edit_json, mutate, replay

from scratchlm import corpus as data
from scratchlm.cli import main
from scratchlm.corpus import HEADER_BYTES, TokenCorpus, read_corpus
from scratchlm.errors import (
    DataError,
    ScratchLMError,
    TokenFileError,
    WriteError,
)
from scratchlm.model import load_model
from scratchlm.tokenizers import build_tokenizer

# --------------------------------------------------------------------------- corpora reading


def test_read_corpus_chunks_join_back_and_cut_between_lines(tmp_path):
    text = "First line here.\nSecond: more words\n\n  indented\nlast é line\n" * 200
    path = write(tmp_path / "c.txt", text)
    chunks = list(read_corpus(path, chunk_bytes=100))
    assert "".join(chunks) == text
    assert len(chunks) > 20
    assert all(c.endswith("\n") for c in chunks)


def test_read_corpus_forced_cut_keeps_characters_whole(tmp_path):
    text = "é" * 1000  # one long line: chunks must be cut inside it
    chunks = list(read_corpus(write(tmp_path / "c.txt", text), chunk_bytes=64))
    assert "".join(chunks) == text and len(chunks) > 1


@pytest.mark.parametrize("kind", ["char", "bpe", "word"])
def test_chunked_tokenization_equals_whole(tmp_path, kind):
    text = "Hello, World!\nIt's  a test </s>\nNew line: 42 words\n\nAnd more.\n" * 50
    tok = build_tokenizer(kind, [text], vocab_size=300 if kind == "bpe" else None)
    chunks = read_corpus(write(tmp_path / "c.txt", text), chunk_bytes=50)
    assert [i for c in chunks for i in tok.encode(c)] == tok.encode(text)


def test_read_corpus_bad_utf8_late_in_file(tmp_path):
    path = write(tmp_path / "c.txt", b"abc\ndef\n" * 100 + b"x\x80y\n")
    with pytest.raises(DataError, match=r"c\.txt: invalid UTF-8 at byte 801 \(line 201\)"):
        list(read_corpus(path, chunk_bytes=64))


def test_read_corpus_missing(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        list(read_corpus(tmp_path / "none.txt"))


# --------------------------------------------------------------------------- token corpora

LONG_CORPUS = CORPUS * 5  # more windows than the fixture's


@pytest.fixture
def long_corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(LONG_CORPUS, encoding="utf-8")
    return path, build_tokenizer("char", [LONG_CORPUS])


def test_corpus_windows_are_offset_by_one(long_corpus):
    path, tok = long_corpus
    tc = TokenCorpus.build(path, tok)
    assert tc.dtype == np.uint16
    batch = tc.sample(6, 32, np.random.default_rng(0))
    assert batch.inputs.shape == batch.targets.shape == batch.mask.shape == (6, 32)
    assert batch.inputs.dtype == np.int64 and (batch.mask == 1).all()
    assert (batch.inputs[:, 1:] == batch.targets[:, :-1]).all()
    assert tok.decode(batch.inputs[0]) in LONG_CORPUS


def test_corpus_split_is_the_last_tenth(long_corpus):
    path, tok = long_corpus
    tc = TokenCorpus.build(path, tok)
    all_ids = tok.encode(LONG_CORPUS)
    n_val = int(len(all_ids) * 0.1)
    assert (tc.n_train_tokens, tc.n_val_tokens) == (len(all_ids) - n_val, n_val)
    assert list(tc.val) == all_ids[-n_val:]
    batch = tc.sample(4, 16, np.random.default_rng(1), split="val")
    assert tok.decode(batch.inputs[0]) in tok.decode(all_ids[-n_val:])
    with pytest.raises(DataError, match="fewer than seq_len"):
        tc.sample(1, n_val, np.random.default_rng(0), split="val")


def test_corpus_cache_is_reused_then_rebuilt_when_the_corpus_changes(long_corpus):
    path, tok = long_corpus
    first = TokenCorpus.build(path, tok)
    assert first.path.parent == path.parent and first.path.name.endswith(".tokens.bin")
    mtime = os.stat(first.path).st_mtime_ns
    again = TokenCorpus.build(path, tok)
    assert again.path == first.path and os.stat(again.path).st_mtime_ns == mtime
    path.write_text(LONG_CORPUS + "A new line.\n", encoding="utf-8")
    changed = TokenCorpus.build(path, tok)
    assert changed.path != first.path
    assert changed.n_train_tokens + changed.n_val_tokens == len(
        tok.encode(LONG_CORPUS + "A new line.\n")
    )


def test_corpus_in_a_read_only_folder_caches_elsewhere(tmp_path, monkeypatch):
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "corpus.txt"
    path.write_text(LONG_CORPUS, encoding="utf-8")
    folder.chmod(0o555)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        tok = build_tokenizer("char", [LONG_CORPUS])
        tc = TokenCorpus.build(path, tok)
        assert tc.path.parent == tmp_path / "cache" / "scratchlm"
        assert TokenCorpus.build(path, tok).path == tc.path
        explicit = TokenCorpus.build(path, tok, cache_dir=tmp_path / "mine")
        assert explicit.path.parent == tmp_path / "mine"
        assert sorted(p.name for p in folder.iterdir()) == ["corpus.txt"]
    finally:
        folder.chmod(0o755)


def test_failed_tokenization_leaves_no_token_file(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "read_corpus", functools.partial(read_corpus, chunk_bytes=64))
    path = tmp_path / "c.txt"
    path.write_bytes(LONG_CORPUS.encode() + b"\xff\n")
    with pytest.raises(DataError, match="invalid UTF-8"):
        TokenCorpus.build(path, build_tokenizer("char", [LONG_CORPUS]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_bpe_corpus_matches_whole_text_encoding(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "read_corpus", functools.partial(read_corpus, chunk_bytes=256))
    path = tmp_path / "c.txt"
    path.write_text(LONG_CORPUS, encoding="utf-8")
    tok = build_tokenizer("bpe", [LONG_CORPUS], vocab_size=320)
    tc = TokenCorpus.build(path, tok, val_fraction=0.0)
    assert tc.n_val_tokens == 0
    assert list(tc.train) == tok.encode(LONG_CORPUS)


# ------------------------------------------------------------------------------ damaged token files, case by case


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
    config = write(tmp_path / "c.toml", TINY_TOML)
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


# ------------------------------------------------------------------------------ fuzzing: damaged token files give the right tokens or an error, never wrong tokens


FUZZ_CORPUS = "To be, or not to be: that is the question.\nWhether 'tis nobler.\n" * 20


def edited_header(data: bytes, rng: random.Random) -> bytes:
    header = json.loads(data[:HEADER_BYTES])
    header = edit_json(header, rng)
    return dumps(header).encode().ljust(HEADER_BYTES)[:HEADER_BYTES] + data[HEADER_BYTES:]


N_TOKEN_MUTANTS = 400


def test_fuzz_token_files(tmp_path, caplog):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(FUZZ_CORPUS)
    tok = build_tokenizer("char", [FUZZ_CORPUS])
    expected = tok.encode(FUZZ_CORPUS)
    cache = TokenCorpus.build(corpus, tok).path
    good = cache.read_bytes()
    rng = random.Random(SEED)
    caplog.set_level(logging.ERROR, logger="scratchlm")  # not the 400 rebuild warnings
    outcomes = {"opened": 0, "refused": 0}
    for k in range(N_TOKEN_MUTANTS):
        data = edited_header(good, rng) if k % 4 == 0 else mutate(good, rng)
        cache.unlink()  # a new file, not one rewritten in place (see fresh_file)
        cache.write_bytes(data)
        try:  # opened directly: the right tokens or an error, never wrong tokens
            tc = TokenCorpus(cache, tok.vocab_size, val_fraction=0.0)
            assert tc.train.tolist() == expected, replay("token-file", k, data, AssertionError())
            outcomes["opened"] += 1
        except ScratchLMError as e:
            assert str(cache) in str(e), replay("token-file", k, data, e)
            outcomes["refused"] += 1
        except Exception as e:
            pytest.fail(replay("token-file", k, data, e))
        cache.unlink()
        cache.write_bytes(data)
        try:  # through build: always the right tokens
            tc = TokenCorpus.build(corpus, tok, val_fraction=0.0)
        except Exception as e:
            pytest.fail(replay("token-file build", k, data, e))
        assert tc.train.tolist() == expected, replay("token-file build", k, data, AssertionError())
    assert outcomes["refused"] > 300
