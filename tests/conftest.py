"""Fixtures shared by the test files: a full disk, a small token corpus, small model files, and the
server tests' trained model, server and client."""

import os
import tempfile

import numpy as np
import openai
import pytest
from helpers import CORPUS, write
from models import word_model
from serving import serving, trained_model

from scratchlm import Model, ModelConfig
from scratchlm.checkpoint import save_checkpoint
from scratchlm.corpus import TokenCorpus
from scratchlm.modelfile import save_model
from scratchlm.optim import AdamW
from scratchlm.tokenizers import build_tokenizer


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


@pytest.fixture
def corpus(tmp_path):
    """A small character corpus with its token file: (corpus path, tokenizer, token file path,
    the corpus's tokens)."""
    path = write(tmp_path / "corpus.txt", CORPUS)
    tok = build_tokenizer("char", [CORPUS])
    tc = TokenCorpus.build(path, tok)
    return path, tok, tc.path, tok.encode(CORPUS)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A tiny untrained word model, saved."""
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, word_model())
    return path


@pytest.fixture(scope="module")
def endless_model_file(tmp_path_factory):
    """A tiny word model whose every answer goes on forever, saved."""
    path = tmp_path_factory.mktemp("endless") / "endless.safetensors"
    save_model(path, word_model(never_ends=True))
    return path


CONFIG = ModelConfig(
    vocab_size=12, d_model=8, n_heads=2, d_ff=8, depth=2, max_seq_len=6, cope_max_pos=4
)


@pytest.fixture(scope="module")
def model_seeds(tmp_path_factory) -> list[tuple[str, bytes]]:
    """Small model files and checkpoints, in both formats: what the fuzz tests damage."""
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


# ------------------------------------------------------------------------------ the server tests


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """The server tests' small trained chat model (tests/serving.py), trained once per process."""
    return trained_model(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def server(model_path):
    """`scratchlm serve` of that model in a child process, one per test module."""
    with serving(model_path) as server:
        yield server


@pytest.fixture
def client(server):
    """The official `openai` client of that server."""
    return openai.OpenAI(base_url=server.url + "v1", api_key="unused", max_retries=0, timeout=60)
