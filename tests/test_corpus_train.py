"""Training on a plain-text corpus through the real command: `scratchlm train --corpus`."""

import json

from scratchlm.checkpoint import load_checkpoint
from scratchlm.cli import main
from scratchlm.model import load_model
from scratchlm.trainer import Trainer

TEXT = (
    "".join(
        f"{who}:\nThe {thing} is {colour} and the night is long.\n\n"
        for who in ("ROMEO", "JULIET", "NURSE", "FRIAR")
        for thing in ("moon", "rose", "sky", "sea", "wall")
        for colour in ("pale", "red", "grey", "blue")
    )
    * 2
)  # about 8 KB


def corpus(tmp_path):
    path = tmp_path / "play.txt"
    path.write_text(TEXT)
    (tmp_path / "c.toml").write_text(
        "[model]\nd_model = 32\nn_heads = 2\nd_ff = 64\ndepth = 2\nmax_seq_len = 32\n"
    )
    return ["train", "--corpus", str(path), "--config", str(tmp_path / "c.toml")]


def metrics(out):
    return [
        json.loads(x) for x in out.with_name(out.stem + ".metrics.jsonl").read_text().splitlines()
    ]


def test_corpus_training_lowers_validation_loss(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    argv = [*corpus(tmp_path), "--steps", "60", "--eval-every", "20", "--lr", "1e-2"]
    assert main([*argv, "--batch-size", "8", "--output", str(out)]) == 0
    rows = metrics(out)
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 0.3
    assert "--- sample at update 60" in capsys.readouterr().out
    assert load_model(out).tokenizer.to_json()["type"] == "char"


def test_max_minutes_stops_and_saves(tmp_path):
    out = tmp_path / "m.safetensors"
    argv = [*corpus(tmp_path), "--steps", "100000", "--max-minutes", "0.002", "--batch-size", "4"]
    assert main([*argv, "--output", str(out)]) == 0
    rows = metrics(out)
    assert len(rows) == 1 and rows[0]["step"] < 100000  # stopped at the budget, evaluated once
    load_model(out)


def test_resumed_corpus_run_continues_from_the_saved_step(tmp_path, monkeypatch):
    out_a, out_b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    base = [*corpus(tmp_path), "--eval-every", "10", "--batch-size", "4", "--steps", "30"]
    assert main([*base, "--output", str(out_a)]) == 0
    # The same run, interrupted (Ctrl-C) as it is about to write its step-30 checkpoint.
    real_save = Trainer.save

    def interrupted(self, path, state):
        if self.step == 30:
            raise KeyboardInterrupt
        real_save(self, path, state)

    monkeypatch.setattr(Trainer, "save", interrupted)
    assert main([*base, "--output", str(out_b)]) == 130
    monkeypatch.setattr(Trainer, "save", real_save)
    ckpt = tmp_path / "b.ckpt.safetensors"
    assert load_checkpoint(ckpt)[2]["step"] == 20
    assert main([*base, "--output", str(out_b), "--resume", str(ckpt)]) == 0
    assert [r["step"] for r in metrics(out_b)][-1] == 30
    a, b = load_model(out_a), load_model(out_b)
    # the same windows in the same order, the same optimizer state: the same weights
    for name, value in a.params.items():
        assert (b.params[name] == value).all(), name
