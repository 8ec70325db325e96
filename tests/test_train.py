"""The trainer: anomaly handling, divergence, accumulation, resuming, and the seed pipeline."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from scratchlm import Model, ModelConfig
from scratchlm.checkpoint import load_checkpoint
from scratchlm.errors import ConfigError, TrainingDivergedError
from scratchlm.examples import ExampleBatcher
from scratchlm.model import load_model
from scratchlm.plot import updates
from scratchlm.train import Phase, RunOptions, checkpoint_path, train_examples
from scratchlm.trainer import TrainConfig, Trainer

SMALL = {"d_model": 16, "n_heads": 2, "d_ff": 24, "depth": 2, "max_seq_len": 16}


def toy(seed=0, n=24, V=12):
    rng = np.random.default_rng(seed)
    # counting sequences from a random start: learnable, so the loss can really fall
    starts, lengths = rng.integers(0, V - 3, n), rng.integers(4, 10, n)
    examples = [
        [3 + (a + i) % (V - 3) for i in range(k)] + [2]
        for a, k in zip(starts, lengths, strict=True)
    ]
    model = Model(ModelConfig(vocab_size=V, **SMALL), seed=seed)
    return model, ExampleBatcher(examples, batch_size=8, max_seq_len=16, seed=seed)


def poison(model, when, value=np.nan):
    """Make `model.loss_and_grads` return a gradient holding `value` on the calls in `when`."""
    real, calls = model.loss_and_grads, [0]

    def fake(*args, **kwargs):
        loss, grads, stats = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] in when:
            grads["head.w"][0, 0] = value
        return loss, grads, stats

    model.loss_and_grads = fake


def test_training_lowers_the_loss():
    model, batcher = toy()
    rows = Trainer(model, TrainConfig(epochs=8, lr=1e-2)).fit_examples("pre", batcher)
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.3
    assert {"epoch", "step", "loss", "grad_norm", "lr", "tokens_per_s"} <= set(rows[0])


def test_adaptive_depth_logs_depth_per_epoch():
    rng = np.random.default_rng(0)
    examples = [list(rng.integers(3, 12, 6)) + [2] for _ in range(16)]
    cfg = ModelConfig(vocab_size=12, **{**SMALL, "depth": 1}, adaptive_depth=True, max_depth=4)
    model = Model(cfg)
    batcher = ExampleBatcher(examples, batch_size=8, max_seq_len=16)
    row = Trainer(model, TrainConfig(epochs=1)).fit_examples("pre", batcher)[0]
    assert 1 <= row["depth_min"] <= row["depth_mean"] <= row["depth_max"] <= 4


def test_nan_gradient_is_skipped_and_training_continues(caplog):
    model, batcher = toy()
    poison(model, when={2})
    before = {k: v.copy() for k, v in model.params.items()}
    trainer = Trainer(model, TrainConfig(epochs=1))
    trainer.fit_examples("pre", batcher)
    assert trainer.step == len(batcher) - 1  # one update skipped, the others taken
    assert "skipped update 2" in caplog.text
    assert all(np.isfinite(v).all() for v in model.params.values())
    assert not np.array_equal(before["head.w"], model.params["head.w"])


def test_anomalous_but_finite_gradient_is_skipped(caplog):
    model, batcher = toy()
    poison(model, when={1}, value=5e3)
    trainer = Trainer(model, TrainConfig(epochs=1, max_grad=1000.0))
    trainer.fit_examples("pre", batcher)
    assert trainer.step == len(batcher) - 1 and "max |grad| = 5e+03" in caplog.text


def test_repeated_anomalies_stop_training_and_keep_the_checkpoint(tmp_path):
    model, batcher = toy()
    ckpt = tmp_path / "ckpt.safetensors"
    trainer = Trainer(model, TrainConfig(epochs=3, max_bad_steps=3))
    trainer.fit_examples("pre", batcher, checkpoint=ckpt)  # a good checkpoint after 3 epochs
    good = ckpt.read_bytes()
    poison(model, when=set(range(1, 100)))
    trainer = Trainer(model, TrainConfig(epochs=1, max_bad_steps=3))
    with pytest.raises(TrainingDivergedError, match="3 anomalous gradients in a row"):
        trainer.fit_examples("pre", batcher, checkpoint=ckpt)
    assert ckpt.read_bytes() == good
    load_checkpoint(ckpt)  # still verifies


def test_non_finite_loss_stops_training():
    model, batcher = toy()
    real = model.loss_and_grads
    model.loss_and_grads = lambda *a, **k: (math.inf, *real(*a, **k)[1:])
    with pytest.raises(TrainingDivergedError, match="the loss became inf"):
        Trainer(model, TrainConfig(epochs=1)).fit_examples("pre", batcher)


def test_accumulation_equals_one_big_batch():
    """Two micro-batches, weighted by their counted tokens, give the big batch's gradient."""
    model, batcher = toy()
    b = next(batcher.batches(0))
    halves = [type(b)(*(x[:4] for x in b)), type(b)(*(x[4:] for x in b))]
    captured = {}
    trainer = Trainer(model, TrainConfig(grad_clip=0))
    trainer.opt.step = lambda grads, lr=None: captured.setdefault("g", grads)
    trainer.update(halves, lr=1e-3)
    _, full = model.loss_and_grads(b.inputs, b.targets, b.mask)
    for name in full:
        np.testing.assert_allclose(captured["g"][name], full[name], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "bad",
    [
        {"epochs": 0},
        {"batch_size": -1},
        {"lr": 0.0},
        {"warmup": 1.0},
        {"accum": 1.5},
        {"dropout": 1.0},
        {"dropout": -0.1},
    ],
)
def test_bad_train_config(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def write_sets(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    facts = [
        f"The {w} is {c} . </s>" for w in ("sky", "sea", "grass", "sun") for c in ("blue", "big")
    ]
    chat = [
        "User: What colour is the sky? Assistant: The sky is blue . </s>",
        "User: What colour is grass? Assistant: Grass is green . </s>",
    ]
    (tmp_path / "pre.json").write_text(json.dumps(facts))
    (tmp_path / "chat.json").write_text(json.dumps(chat))
    return tmp_path / "pre.json", tmp_path / "chat.json"


def options(tmp_path, epochs=(3, 4), dropout=0.0, optimizer="adamw"):
    pre, chat = write_sets(tmp_path)
    tc = TrainConfig(batch_size=4, lr=5e-3, dropout=dropout, optimizer=optimizer)
    return RunOptions(
        phases=[
            Phase("pretrain", [pre], replace(tc, epochs=epochs[0])),
            Phase("chat", [chat], replace(tc, epochs=epochs[1])),
        ],
        output=tmp_path / "out" / "m.safetensors",
        model=SMALL,
    )


def test_pipeline_saves_model_metrics_and_checkpoint(tmp_path, capsys):
    train_examples(options(tmp_path))
    said = capsys.readouterr().out.splitlines()
    out = tmp_path / "out" / "m.safetensors"
    model = load_model(out)
    assert model.tokenizer is not None and model.config.depth == 2
    rows = [json.loads(line) for line in out.with_name("m.metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == ["pretrain"] * 3 + ["chat"] * 4
    assert any("How do mountains form?" in s for s in said)
    _, _, state = load_checkpoint(checkpoint_path(out))
    assert state["phase"] == "chat" and state["epoch"] == 4


@pytest.mark.parametrize(
    ("dropout", "optimizer"),
    [(0.0, "adamw"), (0.2, "adamw"), (0.0, "sgd"), (0.0, "lion"), (0.2, "muon")],
)
def test_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch, dropout, optimizer):
    """Every optimizer's state goes into the checkpoint: the resumed run is bit-identical."""
    full = train_examples(options(tmp_path / "a", dropout=dropout, optimizer=optimizer))
    # Interrupt a second run as it is about to save its third checkpoint (pre-training epoch 3).
    real_save, saves = Trainer.save, []

    def interrupted(self, path, state):
        saves.append(state)
        if len(saves) == 3:
            raise KeyboardInterrupt
        real_save(self, path, state)

    monkeypatch.setattr(Trainer, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_examples(options(tmp_path / "b", dropout=dropout, optimizer=optimizer))
    monkeypatch.setattr(Trainer, "save", real_save)
    ckpt = checkpoint_path(tmp_path / "b" / "out" / "m.safetensors")
    _, opt_state, state = load_checkpoint(ckpt)
    assert state["epoch"] == 2 and opt_state["name"] == optimizer
    again = options(tmp_path / "b", dropout=dropout, optimizer=optimizer)
    resumed = train_examples(replace(again, resume=ckpt))
    for name, value in full.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)


def test_held_out_file_is_scored_per_chat_epoch_and_at_the_end(tmp_path, capsys):
    opts = options(tmp_path)
    val = tmp_path / "val.json"
    val.write_text(json.dumps(["User: What colour is the sea? Assistant: The sea is blue . </s>"]))
    opts.val = val
    train_examples(opts)
    said = capsys.readouterr().out
    assert "exact answers on the chat set: " in said
    assert "exact answers on the held-out val.json: " in said
    rows = [json.loads(line) for line in opts.output.with_name("m.metrics.jsonl").open()]
    for row in rows:
        held_out = {"val_loss", "val_exact"} <= set(row)
        assert held_out == (row["phase"] == "chat")  # the chat phase only
        if held_out:
            assert row["val_loss"] > 0 and row["val_exact"] in (0.0, 1.0)


def test_dropout_rate_zero_trains_exactly_as_without_and_a_rate_changes_training():
    def trained(**tc):
        model, batcher = toy()
        Trainer(model, TrainConfig(epochs=2, **tc)).fit_examples("pre", batcher)
        return model.params

    plain, zero, dropped = trained(), trained(dropout=0.0), trained(dropout=0.3)
    for name, value in plain.items():
        np.testing.assert_array_equal(zero[name], value, err_msg=name)
    assert not np.array_equal(dropped["head.w"], plain["head.w"])


def test_dropout_masks_are_drawn_per_micro_batch_and_update():
    model, batcher = toy()
    trainer = Trainer(model, TrainConfig(dropout=0.5, seed=3))
    assert trainer._dropout(0).rate == 0.5
    draw = lambda i: trainer._dropout(i).keep((2, 64))  # noqa: E731
    assert np.array_equal(draw(0), draw(0)) and not np.array_equal(draw(0), draw(1))
    before = draw(0)
    trainer.update([next(batcher.batches(0))], lr=1e-3)
    assert not np.array_equal(draw(0), before)  # the next update draws new masks
    assert Trainer(model, TrainConfig())._dropout(0) is None


def test_plot_counts_updates_across_phases():
    rows = [{"phase": "pretrain", "step": s} for s in (5, 10)]
    rows += [{"phase": "chat", "step": s} for s in (3, 6)]
    assert updates(rows) == [5, 10, 13, 16]
    assert updates([{"loss": 1.0}, {"loss": 0.5}]) == [1, 2]
