"""Fuzz tests: thousands of damaged data files, model files and token files, made by a seeded
mutator (so every run tries the same cases and a failure repeats). The contract under test:

- a data file (.json, .jsonl with text or messages, .txt) either loads, giving examples that end in
  "</s>" and are valid Unicode, or raises a `ScratchLMError`;
- a model file or checkpoint either loads, giving a model that runs, or raises a `ScratchLMError`;
- a token file either opens with exactly the tokens of its corpus or raises a `ScratchLMError`, and
  `TokenCorpus.build` always ends with the right tokens (it rebuilds what fails a check);
- never any other exception; and the command line turns a sample of the failures into exactly one
  `error:` line and exit status 2.

A case that breaks the contract fails with its seed, index and the start of its bytes, so it can be
replayed with `case_bytes`. Mutations: byte flips, insertions of bytes and of known troublemakers
(deep nesting, huge integers, lone surrogates, NUL, invalid UTF-8), deletions, duplications,
truncations; for model and token files also edits of the parsed header or document, with the digests
recomputed so that the checks after the digest are reached too.
"""

import json
import logging
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from scratchlm import Model, ModelConfig
from scratchlm.checkpoint import load_checkpoint, save_checkpoint
from scratchlm.cli import main
from scratchlm.corpus import HEADER_BYTES, TokenCorpus
from scratchlm.errors import ScratchLMError
from scratchlm.examples import load_examples
from scratchlm.model import load_model
from scratchlm.modelfile import checkpoint_digest, model_digest, save_model
from scratchlm.optim import AdamW
from scratchlm.tokenizers import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SEED = 14  # the issue's number; any seed must pass

# --------------------------------------------------------------------------------- the mutator

TROUBLE = [  # byte strings that broke, or could break, a parser somewhere
    b"[" * 1200,
    b'{"a":' * 1100,
    b"9" * 5000,
    b"-" + b"1" * 4400,
    b"1e99999",
    b"NaN",
    b"-Infinity",
    b"\\ud800",
    b'"\\udfff"',
    b"\\ud83d\\ude00",
    b"\\\\ud800",
    b"\\u0000",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",  # a surrogate encoded in UTF-8: invalid
    b"\xef\xbb\xbf",  # a BOM, in the middle
    b"\r\n",
    b"\n\n",
    b"</s>",
    b'"role": ["user"]',
    b'"role": {"a": 1}',
    b'"content": null',
    b'"messages": []',
    b'"text": 5',
    b"null",
    b"true",
    b"{}",
    b"[]",
    b'"',
    b",",
    b":",
    b"x" * 11000,
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits of `data`."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(data) + 1)
        kind = rng.randrange(7)
        if kind == 0 and data:  # flip one bit
            i = min(i, len(data) - 1)
            data[i] ^= 1 << rng.randrange(8)
        elif kind == 1:  # insert random bytes
            data[i:i] = rng.randbytes(rng.randint(1, 8))
        elif kind == 2:  # insert a troublemaker
            data[i:i] = rng.choice(TROUBLE)
        elif kind == 3:  # delete a range
            del data[i : i + rng.randint(1, 64)]
        elif kind == 4:  # duplicate a range
            data[i:i] = data[i : i + rng.randint(1, 64)]
        elif kind == 5:  # truncate
            del data[i:]
        else:  # overwrite a range with one repeated byte
            n = rng.randint(1, 32)
            data[i : i + n] = bytes([rng.randrange(256)]) * n
    return bytes(data)


def random_json(rng: random.Random, depth: int = 0):
    """A random JSON value, mostly small, of every type."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 1, 2**31, 10**20, rng.randint(-5, 50)])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, float("nan"), float("inf"), 3.25])
    if kind in (4, 5):
        return rng.choice(["", "user", "assistant", "hi </s>", "x" * 50, "é\U0001f600", "\udc80"])
    if kind in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["text", "messages", "role", "content", "type", "tokens", "merges", "pattern"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def dumps(value) -> str:
    """JSON text of `value`, even with a lone surrogate in it (ensure_ascii escapes it)."""
    return json.dumps(value)


def edit_json(value, rng: random.Random):
    """`value` (parsed JSON) with one random path replaced, deleted or extended."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        choice = rng.randrange(4)
        if choice == 0:
            del value[key]
        elif choice == 1:
            value[key] = random_json(rng)
        else:
            value[key] = edit_json(value[key], rng)
        return value
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        value[i] = edit_json(value[i], rng) if rng.random() < 0.6 else random_json(rng)
        return value
    return random_json(rng)


def cases(seed_files: list[tuple[str, bytes]], n: int, seed: int):
    """(index, name, bytes): `n` mutants of the seed files, round robin."""
    rng = random.Random(seed)
    for k in range(n):
        name, data = seed_files[k % len(seed_files)]
        yield k, name, mutate(data, rng)


def fresh_file(folder: Path, k: int, name: str, data: bytes) -> Path:
    """Case k's bytes in a new file: rewriting one file in place costs milliseconds a time on
    ext4, which flushes a file truncated and written again when it is closed."""
    path = folder / f"{k}-{name}"
    path.write_bytes(data)
    return path


def replay(what: str, k: int, data: bytes, error: BaseException) -> str:
    return (
        f"{what} case {k} (seed {SEED}) broke the contract with {type(error).__name__}: {error}\n"
        f"first bytes: {data[:200]!r}"
    )


# ---------------------------------------------------------------------------------- data files


def data_seeds() -> list[tuple[str, bytes]]:
    texts = ["The cat sat. </s>", "Héllo, wörld \U0001f600", 'a\\b "quoted"', "line\twith tab"]
    chats = [
        {
            "messages": [
                {"role": "user", "content": "How do mountains form?"},
                {"role": "assistant", "content": "Plates push the land up."},
            ]
        },
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]},
    ]
    return [
        ("a.json", json.dumps(texts, indent=1).encode()),
        ("a.json", json.dumps(texts, ensure_ascii=False).encode()),
        ("t.jsonl", "\n".join(json.dumps({"text": t}) for t in texts).encode()),
        ("m.jsonl", "\n".join(json.dumps(c, ensure_ascii=False) for c in chats).encode()),
        ("a.txt", "\n".join(texts).encode()),
        ("a.txt", b"\xef\xbb\xbfone line\r\nanother line\n\n"),
    ]


def structured_data_seeds(rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    """Valid JSON of the wrong shapes: every field of every format with a random type."""
    out = []
    for k in range(n):
        name = ["a.json", "t.jsonl", "m.jsonl"][k % 3]
        if name == "a.json":
            doc = edit_json(["one", "two", "three"], rng)
            out.append((name, dumps(doc).encode()))
        else:
            record = {"text": "hi"} if name == "t.jsonl" else data_seed_chat()
            out.append((name, (dumps(edit_json(record, rng)) + "\n").encode()))
    return out


def data_seed_chat():
    return {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def check_examples(examples) -> None:
    assert isinstance(examples, list) and examples
    for text in examples:
        assert isinstance(text, str) and text.endswith("</s>")
        text.encode("utf-8")  # valid Unicode


N_DATA_MUTANTS = 2000
N_DATA_STRUCTURED = 400


def test_fuzz_data_files(tmp_path):
    rng = random.Random(SEED)
    mutants = list(cases(data_seeds(), N_DATA_MUTANTS, SEED))
    structured = [(N_DATA_MUTANTS + i, *c) for i, c in enumerate(structured_data_seeds(rng, 400))]
    outcomes = {"loaded": 0, "refused": 0}
    for k, name, data in mutants + structured:
        path = fresh_file(tmp_path, k, name, data)
        try:
            check_examples(load_examples(path))
            outcomes["loaded"] += 1
        except ScratchLMError as e:
            assert str(e).startswith(f"{path}: "), replay("data-file", k, data, e)
            outcomes["refused"] += 1
        except Exception as e:
            pytest.fail(replay("data-file", k, data, e))
    assert sum(outcomes.values()) >= 2_000
    assert outcomes["loaded"] > 100 and outcomes["refused"] > 100  # both paths are exercised


# ---------------------------------------------------------------------------------- model files

CONFIG = ModelConfig(
    vocab_size=12, d_model=8, n_heads=2, d_ff=8, depth=2, max_seq_len=6, cope_max_pos=4
)


@pytest.fixture(scope="module")
def model_seeds(tmp_path_factory) -> list[tuple[str, bytes]]:
    d = tmp_path_factory.mktemp("seeds")
    tok = build_tokenizer("word", ["the cat sat on a mat and ran off"])
    model = Model(ModelConfig(**{**CONFIG.to_dict(), "vocab_size": tok.vocab_size}), tok, seed=1)
    opt = AdamW(model.params, lr=1e-2)
    opt.step({n: np.ones_like(p) for n, p in model.params.items()})
    state = {"step": 1, "epoch": 1, "phase": "pretrain"}
    seeds = []
    for name in ("m.safetensors", "m.json"):
        save_model(d / name, model, description="seed")
        seeds.append((name, (d / name).read_bytes()))
    for name in ("c.safetensors", "c.json"):
        save_checkpoint(d / name, model, opt.state_dict(), state)
        seeds.append((name, (d / name).read_bytes()))
    return seeds


def edited_model_file(name: str, data: bytes, rng: random.Random) -> bytes:
    """One random edit of the parsed document (or safetensors header), digests recomputed."""
    if name.endswith(".json"):
        doc = json.loads(data)
        key = rng.choice(["config", "tokenizer", "metadata", "trainer_state", "optimizer"])
        if key in doc:
            doc[key] = edit_json(doc[key], rng)
        fix_digests(doc, {n: t for n, t in json_tensors(doc).items()})
        return dumps(doc).encode()
    tensors = safetensors.numpy.load(data)
    header_len = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + header_len])["__metadata__"]
    doc = {k: json.loads(v) if k in JSON_ENTRIES else v for k, v in meta.items()}
    key = rng.choice(sorted(set(JSON_ENTRIES) & set(doc)))
    doc[key] = edit_json(doc[key], rng)
    fix_digests(doc, tensors)
    meta = {k: dumps(v) if k in JSON_ENTRIES else v for k, v in doc.items()}
    if rng.random() < 0.2:  # drop or break a string entry too
        meta[rng.choice(sorted(meta))] = rng.choice(["", "2", "scratchlm", "{"])
    return safetensors.numpy.save(tensors, metadata=meta)


JSON_ENTRIES = ("config", "tokenizer", "metadata", "optimizer", "trainer_state")


def json_tensors(doc) -> dict:
    try:
        return {
            n: np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
            for n, t in doc["tensors"].items()
        }
    except Exception:  # the edit broke the tensors: the digest cannot be recomputed
        return {}


def fix_digests(doc: dict, tensors: dict) -> None:
    """Store the digests of the edited content, when it can be hashed at all."""
    try:
        model = {n: t for n, t in tensors.items() if not n.startswith("opt.")}
        doc["sha256"] = model_digest(doc["config"], doc["tokenizer"], model)
        if "checkpoint_sha256" in doc:
            opt = {n: t for n, t in tensors.items() if n.startswith("opt.")}
            doc["checkpoint_sha256"] = checkpoint_digest(
                doc["sha256"], doc["optimizer"], doc["trainer_state"], opt
            )
    except Exception:  # e.g. a lone surrogate in the edit: the file keeps its old digest
        pass


def load(name: str, path: Path) -> Model:
    """Load as the commands do: checkpoints (c.*) with their optimizer state."""
    return load_checkpoint(path)[0] if name.startswith("c") else load_model(path)


def check_runs(model: Model) -> None:
    """A model that loaded must run, without a warning."""
    cfg = model.config
    ids = np.arange(min(3, cfg.max_seq_len))[None, :] % cfg.vocab_size  # (1, T)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logits, _ = model.forward(ids)
    assert logits.shape == (*ids.shape, cfg.vocab_size) and np.isfinite(logits).all()


N_MODEL_MUTANTS = 600
N_MODEL_EDITS = 300


def test_fuzz_model_files(tmp_path, model_seeds):
    rng = random.Random(SEED)
    mutants = list(cases(model_seeds, N_MODEL_MUTANTS, SEED))
    edits = [
        (N_MODEL_MUTANTS + k, *model_seeds[k % 4][:1], edited_model_file(*model_seeds[k % 4], rng))
        for k in range(N_MODEL_EDITS)
    ]
    outcomes = {"loaded": 0, "refused": 0}
    for k, name, data in mutants + edits:
        path = fresh_file(tmp_path, k, name, data)
        try:
            model = load(name, path)
        except ScratchLMError as e:
            assert str(e).startswith(f"{path}: "), replay("model-file", k, data, e)
            outcomes["refused"] += 1
            continue
        except Exception as e:
            pytest.fail(replay("model-file", k, data, e))
        try:
            check_runs(model)
        except Exception as e:
            pytest.fail(replay("model-file (loaded, then run)", k, data, e))
        outcomes["loaded"] += 1
    assert sum(outcomes.values()) == N_MODEL_MUTANTS + N_MODEL_EDITS
    assert outcomes["loaded"] > 10 and outcomes["refused"] > 100


# ---------------------------------------------------------------------------------- token files

CORPUS = "To be, or not to be: that is the question.\nWhether 'tis nobler.\n" * 20


def edited_header(data: bytes, rng: random.Random) -> bytes:
    header = json.loads(data[:HEADER_BYTES])
    header = edit_json(header, rng)
    return dumps(header).encode().ljust(HEADER_BYTES)[:HEADER_BYTES] + data[HEADER_BYTES:]


N_TOKEN_MUTANTS = 400


def test_fuzz_token_files(tmp_path, caplog):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    tok = build_tokenizer("char", [CORPUS])
    expected = tok.encode(CORPUS)
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


def test_fuzz_counts_meet_the_issue():
    """The issue asks for >= 2,000 data-file cases and >= 1,000 model-file/token-file cases."""
    assert N_DATA_MUTANTS + N_DATA_STRUCTURED >= 2_000
    assert N_MODEL_MUTANTS + N_MODEL_EDITS + N_TOKEN_MUTANTS >= 1_000


# ---------------------------------------------------------------------------------- the CLI


def failing_samples(seeds, n: int, load, folder: Path) -> list[Path]:
    """The first `n` mutants of `seeds` that `load` refuses, as files in `folder`."""
    out = []
    for k, name, data in cases(seeds, 10 * n, SEED + 1):
        path = folder / f"{k}{Path(name).suffix}"
        path.write_bytes(data)
        try:
            load(path)
        except ScratchLMError:
            out.append(path)
        if len(out) == n:
            break
    return out


def test_fuzz_cli_prints_one_error_line(tmp_path, capsys, model_seeds):
    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    runs = [
        ["train", "--pretrain", str(path), "--output", str(tmp_path / "never.json")]
        for path in failing_samples(data_seeds(), 30, load_examples, tmp_path / "data")
    ]
    commands = [["info"], ["generate", "hi"], ["chat"]]
    for i, path in enumerate(failing_samples(model_seeds, 30, load_model, tmp_path / "models")):
        command = commands[i % len(commands)]
        runs.append([command[0], str(path), *command[1:]])
    assert len(runs) == 60
    for argv in runs:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), (argv, err)
    # and a few as real processes: what a user's terminal shows
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("PYTHONSTARTUP", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "scratchlm", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in runs[::15]
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
