"""ModelConfig and the config files of the command line: defaults, round trips, every mistake named."""

import pytest
from helpers import one_error_line, write

from scratchlm import ModelConfig, ScratchLMError
from scratchlm.cli import main


def test_defaults_match_design():
    c = ModelConfig(vocab_size=10)
    assert (c.d_model, c.n_heads, c.d_head, c.d_ff, c.depth) == (128, 8, 16, 256, 3)
    assert (c.max_seq_len, c.cope_max_pos, c.learned_pos) == (80, 64, True)
    assert (c.adaptive_depth, c.max_depth, c.halt_eps, c.ponder_weight) == (False, 8, 0.01, 0.01)


def test_round_trip_dict():
    c = ModelConfig(vocab_size=7, depth=2, adaptive_depth=True)
    assert ModelConfig.from_dict(c.to_dict()) == c
    assert c.n_steps == 8


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vocab_size": 0},
        {"vocab_size": 10, "d_model": 10, "n_heads": 3},
        {"vocab_size": 60_000},
        {"vocab_size": 10, "depth": 1.5},
        {"vocab_size": 10, "learned_pos": 1},
        {"vocab_size": 10, "cope_max_pos": 1},
    ],
)
def test_bad_configs_raise(kwargs):
    with pytest.raises(ScratchLMError):
        ModelConfig(**kwargs)


def test_unknown_field_is_named():
    with pytest.raises(ScratchLMError, match="bogus"):
        ModelConfig.from_dict({"vocab_size": 5, "bogus": 1})


def test_param_shapes_table():
    from scratchlm.params import param_shapes

    s = param_shapes(ModelConfig(vocab_size=11, d_model=8, n_heads=2, d_ff=12, depth=2))
    assert s["block.attn.cope"] == (2, 64, 4)
    assert s["block.attn_scale"] == (2,) and "block.halt.w" not in s
    s = param_shapes(ModelConfig(vocab_size=11, learned_pos=False, adaptive_depth=True))
    assert "pos_emb" not in s and s["block.ffn_scale"] == (8,) and s["block.halt.b"] == (1,)


# ------------------------------------------------------------------------------ config files


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
