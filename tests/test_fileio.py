"""Safe reads and atomic writes: a FIFO given as a file fails at once instead of blocking, and
a temporary file left by a killed write is removed by the next one."""

import os

import pytest
from helpers import one_error_line, watchdog, write
from models import word_model

from scratchlm.checkpoint import save_checkpoint
from scratchlm.cli import main
from scratchlm.corpus import TokenCorpus
from scratchlm.modelfile import save_model
from scratchlm.optim import AdamW

# ------------------------------------------------------------------------------ FIFOs


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


# ------------------------------------------------------------------------------ temp files


def test_checkpoint_temp_file_left_by_a_kill_is_removed_by_the_next_write(tmp_path, corpus):
    model = word_model()
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
