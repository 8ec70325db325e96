"""`scratchlm compare`: variants from the command line and from TOML, every mistake refused before
any training, the budgets (updates, tokens, training seconds), the table, the plot and the points,
and Ctrl-C keeping the finished runs."""

import csv
import json

import pytest

from scratchlm import compare as compare_module
from scratchlm.cli import main
from scratchlm.compare import Variant, parse_variant, read_variants
from scratchlm.errors import ConfigError

TINY = (
    "[model]\nd_model = 16\nn_heads = 2\nd_ff = 24\ndepth = 2\nmax_seq_len = 16\ncope_max_pos = 6\n"
)


@pytest.fixture
def run(tmp_path):
    """A tiny corpus and base config; returns the compare command's arguments so far."""
    (tmp_path / "corpus.txt").write_text("the quick brown fox jumps over the lazy dog. " * 80)
    (tmp_path / "base.toml").write_text(TINY + "[train]\nbatch_size = 4\n")
    return [
        "compare",
        "--corpus",
        str(tmp_path / "corpus.txt"),
        "--config",
        str(tmp_path / "base.toml"),
        "--eval-every",
        "3",
        "--output-dir",
        str(tmp_path / "out"),
    ]


@pytest.mark.parametrize(
    ("text", "variant"),
    [
        ("rope:position=rope", Variant("rope", {"position": "rope"})),
        ("lion:optimizer=lion,lr=5e-4", Variant("lion", {}, {"optimizer": "lion", "lr": 5e-4})),
        ("mix:norm='rmsnorm', share_weights=false,depth=4", None),
        ("plain:", Variant("plain")),
    ],
)
def test_parse_variant(text, variant):
    got = parse_variant(text)
    if variant is None:  # model fields with TOML values: quoted strings, booleans, integers
        assert got.model == {"norm": "rmsnorm", "share_weights": False, "depth": 4}
    else:
        assert got == variant


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        (["x:colour=blue"], "variant 'x:colour=blue': unknown field 'colour'"),
        (["x:position"], "write name:field=value"),
        (["x y:lr=1"], "a variant's name is letters"),
        (["x:position=alibi"], "variant 'x': config field 'position' must be one of"),
        (["x:lr=-1"], "variant 'x': training option lr must be a number > 0"),
        (["x:lr=1e-3", "x:lr=2e-3"], "two variants are named 'x'"),
        (["base:lr=1e-3", "base:lr=2e-3"], "two variants are named 'base'"),
    ],
)
def test_a_mistake_is_one_error_line_before_any_training(run, tmp_path, capsys, variants, message):
    argv = [*run, *(a for v in variants for a in ("--variant", v))]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_variants_from_toml(tmp_path):
    path = tmp_path / "v.toml"
    path.write_text('[variants.rope]\nposition = "rope"\n[variants.fast]\nlr = 1e-2\nsteps = 9\n')
    assert read_variants(path) == [
        Variant("rope", {"position": "rope"}),
        Variant("fast", {}, {"lr": 1e-2, "steps": 9}),
    ]
    path.write_text("[model]\nd_model = 8\n")
    with pytest.raises(ConfigError, match=r"\[variants.<name>\]"):
        read_variants(path)


def test_a_comparison_trains_every_variant_and_reports(run, tmp_path, capsys):
    points = tmp_path / "points.csv"
    argv = [
        *run,
        "--steps",
        "6",
        "--variant",
        "rope:position=rope",
        "--variant",
        "stack:share_weights=false",
    ]
    assert main([*argv, "--seeds", "0", "1", "--target-loss", "9.9", "--points", str(points)]) == 0
    said = capsys.readouterr().out
    lines = [line for line in said.splitlines() if line.startswith("variant=")]
    assert [line.split()[0:2] for line in lines] == [
        [f"variant={v}", f"seed={s}"] for v in ("base", "rope", "stack") for s in (0, 1)
    ]
    assert all("steps=6" in line for line in lines)
    table = (tmp_path / "out" / "compare.txt").read_text().splitlines()
    assert table[0].split()[:3] == ["variant", "seeds", "params"] and "s to 9.9" in table[0]
    assert [row.split()[0] for row in table[2:]] == ["base", "rope", "stack"]
    assert all(" ± " in row for row in table[2:])  # two seeds: a spread
    rows = list(csv.DictReader(points.open()))
    assert {(r["variant"], r["seed"]) for r in rows} == {
        (v, s) for v in ("base", "rope", "stack") for s in "01"
    }
    assert {r["step"] for r in rows} == {"3", "6"}
    metrics = (tmp_path / "out" / "stack-s1.metrics.jsonl").read_text().splitlines()
    grads = json.loads(metrics[-1])["grads"]
    assert "blocks.1.attn" in grads["norm"] and len(grads["step_share"]) == 2
    assert sum(grads["step_share"]) == pytest.approx(1.0)
    if (tmp_path / "out" / "compare.png").exists():  # matplotlib is an optional extra
        assert (tmp_path / "out" / "compare.png").stat().st_size > 0


def test_a_token_budget_gives_every_variant_the_same_tokens(run, tmp_path, capsys):
    argv = [
        *run,
        "--tokens",
        "768",
        "--variant",
        "big:batch_size=8",
        "--points",
        str(tmp_path / "p.json"),
    ]
    assert main(argv) == 0
    last = {}
    for p in json.loads((tmp_path / "p.json").read_text()):
        last[p["variant"]] = p
    assert last["base"]["step"] == 12 and last["big"]["step"] == 6  # 768 = 12 x 4 x 16 = 6 x 8 x 16
    assert last["base"]["tokens"] == last["big"]["tokens"] == 768


def test_a_time_budget_sizes_the_schedule_and_stops_the_run(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(compare_module, "_seconds_per_update", lambda run: 0.01)
    assert main([*run, "--minutes", "0.001"]) == 0  # 0.06 s: a schedule of 6 updates
    rows = (tmp_path / "out" / "base-s0.metrics.jsonl").read_text().splitlines()
    assert json.loads(rows[-1])["step"] <= 6


def test_ctrl_c_keeps_the_finished_variants(run, tmp_path, monkeypatch, capsys):
    real, calls = compare_module.train_corpus, []

    def interrupted(opts):
        calls.append(opts.label)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(opts)

    monkeypatch.setattr(compare_module, "train_corpus", interrupted)
    assert main([*run, "--steps", "3", "--variant", "rope:position=rope"]) == 130
    said = capsys.readouterr().out
    assert "interrupted: 1 finished run(s)" in said and calls == ["base-s0", "rope-s0"]
    table = (tmp_path / "out" / "compare.txt").read_text().splitlines()
    assert [row.split()[0] for row in table[2:]] == ["base"]


def test_example_sets_report_the_held_out_exact_answers(tmp_path, capsys):
    facts = [f"The {w} is {c} . </s>" for w in ("sky", "sea") for c in ("blue", "big")]
    chat = ["User: What colour is the sky? Assistant: The sky is blue . </s>"]
    for name, texts in (("pre", facts), ("chat", chat), ("val", chat)):
        (tmp_path / f"{name}.json").write_text(json.dumps(texts))
    (tmp_path / "base.toml").write_text(TINY + "[train]\nepochs = 2\nbatch_size = 2\n")
    argv = [
        "compare",
        "--pretrain",
        str(tmp_path / "pre.json"),
        "--chat",
        str(tmp_path / "chat.json"),
    ]
    argv += ["--val", str(tmp_path / "val.json"), "--config", str(tmp_path / "base.toml")]
    argv += ["--output-dir", str(tmp_path / "out"), "--variant", "gelu:ffn=gelu"]
    assert main(argv) == 0
    table = (tmp_path / "out" / "compare.txt").read_text().splitlines()
    assert table[0].endswith("held-out exact") and len(table) == 4
    capsys.readouterr()
    assert main([*argv, "--tokens", "100"]) == 2  # budgets of tokens or time: corpora only
    assert "a budget of updates, tokens or time is for a corpus" in capsys.readouterr().err
