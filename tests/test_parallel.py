"""Data parallelism (parallel.py): shards on threads in this process, and real `mpiexec -n 2` runs
(skipped only where mpi4py, the optional extra `mpi`, is not installed)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mpi_worker import (
    ADAPTIVE,
    FIXED,
    RUNS,
    examples,
    poison_second_call,
    save_interrupted_at,
    train_case,
)
from test_corpus_train import corpus
from test_train import write_sets

from scratchlm import Model, ModelConfig
from scratchlm.act import Depth
from scratchlm.checkpoint import load_checkpoint
from scratchlm.cli import main
from scratchlm.errors import ConfigError
from scratchlm.examples import Batch
from scratchlm.model import load_model
from scratchlm.optim import AdamW, clip_grad_norm
from scratchlm.parallel import DataParallel, GradBuffer, get_world, shard_rows
from scratchlm.trainer import TrainConfig, Trainer

WORKER = Path(__file__).with_name("mpi_worker.py")


def assert_close(got: dict, want: dict, rel: float):
    """Every array of `got` within `rel` of `want`'s, relative to the largest entry of each."""
    assert got.keys() == want.keys()
    for name, w in want.items():
        err = float(np.max(np.abs(got[name] - w)) / np.max(np.abs(w)))
        assert err <= rel, f"{name}: relative difference {err:.3g} > {rel}"


# ------------------------------------------------------------------------------ in one process


def test_shard_rows_cover_the_batch_in_order():
    for n_rows, n_shards in [(16, 2), (7, 3), (2, 4), (5, 1)]:
        slices = shard_rows(n_rows, n_shards)
        sizes = [s.stop - s.start for s in slices]
        assert len(slices) == n_shards and sum(sizes) == n_rows
        assert max(sizes) - min(sizes) <= 1
        assert [i for s in slices for i in range(s.start, s.stop)] == list(range(n_rows))


def test_grad_buffer_is_one_array_with_a_view_per_parameter():
    model = Model(ModelConfig(vocab_size=13, d_model=16, n_heads=2, d_ff=24), dtype="float64")
    buf = GradBuffer(model.params, n_rows=3)
    assert buf.flat.dtype == np.float64
    assert buf.flat.size == model.num_parameters + 3 * buf.stats.shape[1]
    for name, p in model.params.items():
        view = buf.grads[name]
        assert view.shape == p.shape and np.shares_memory(view, buf.flat)
        view[...] = 7.0  # writing a view writes the buffer
    assert (buf.flat[: model.num_parameters] == 7.0).all() and (buf.stats == 0).all()


def old_update(model, opt, micro_batches, lr, grad_clip):
    """The update rule as the trainer ran it before parallel.py: the oracle of bit-identity."""
    counts = [float(b.mask.sum()) for b in micro_batches]
    total, loss = None, 0.0
    for batch, count in zip(micro_batches, counts, strict=True):
        part, grads = model.loss_and_grads(*batch)
        weight = count / sum(counts)
        if total is None:
            total = {name: g * weight for name, g in grads.items()}
        else:
            for name, g in grads.items():
                total[name] += weight * g
        loss += weight * part
    clip_grad_norm(total, grad_clip)
    opt.step(total, lr=lr)
    return loss


@pytest.mark.parametrize("config", [FIXED, ADAPTIVE])
def test_one_thread_is_bit_identical_to_the_plain_loop(config):
    cfg = ModelConfig(**config)
    new, old = Model(cfg, seed=3), Model(cfg, seed=3)
    trainer = Trainer(new, TrainConfig(lr=1e-2, grad_clip=0.5), threads=1)
    opt = AdamW(old.params, lr=1e-2)
    batches = list(examples().batches(0))  # 3 batches of different lengths and masks
    for group in (batches[:2], batches[2:], batches[:1]):
        result = trainer.update(group, lr=1e-2)
        assert result["loss"] == old_update(old, opt, group, 1e-2, 0.5)
    for name, value in old.params.items():
        np.testing.assert_array_equal(new.params[name], value, err_msg=name)


def test_many_shards_give_the_gradient_of_one_batch():
    """float64: 5 shards on 3 threads, a shard with no counted target among them."""
    model = Model(ModelConfig(**ADAPTIVE), dtype="float64")
    batch = next(examples().batches(0))
    mask = batch.mask.copy()
    mask[0] = 0  # the first of 5 shards (row 0 of 7) counts nothing
    batch = Batch(batch.inputs, batch.targets, mask)
    loss, want, stats = model.loss_and_grads(*batch, return_stats=True)
    got = DataParallel(model, threads=5).gradients([batch])
    assert_close(got.grads, want, 1e-10)
    assert got.loss == pytest.approx(loss, rel=1e-12) and got.tokens == mask.sum()
    assert len(got.depth) == 4  # one Depth per shard that counted
    depth = Depth.merged(got.depth)
    assert depth.count == mask.sum() and depth.mean == pytest.approx(stats["depth"].mean)
    assert (depth.min, depth.max) == (stats["depth"].min, stats["depth"].max)


@pytest.mark.parametrize("case", RUNS)
def test_two_threads_train_like_one(case):
    two, one = train_case(case, threads=2), train_case(case, threads=1)
    assert two.step == one.step
    assert_close(two.model.params, one.model.params, 1e-10)


def test_a_bad_shard_skips_the_whole_update(caplog):
    model = Model(ModelConfig(**FIXED))
    poison_second_call(model)  # on 2 threads: one of the two shards of update 1
    trainer = Trainer(model, TrainConfig(epochs=1), threads=2)
    trainer.fit_examples("pre", examples())
    assert trainer.step == 2 and "skipped update 1" in caplog.text


def test_threads_must_be_positive(tmp_path, capsys):
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        Trainer(Model(ModelConfig(**FIXED)), TrainConfig(), threads=0)
    assert main([*corpus(tmp_path), "--threads", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: threads must be a positive integer")


def test_without_mpiexec_there_is_one_process():
    world = get_world()
    assert (world.comm, world.rank, world.size, world.is_root) == (None, 0, 1, True)


# ------------------------------------------------------------------------------ mpiexec -n 2

MPIEXEC = Path(sys.executable).with_name("mpiexec")


@pytest.fixture
def mpi():
    """Runs `mpiexec` from this environment: `mpi(["-n", "2", ...])` -> CompletedProcess."""
    pytest.importorskip("mpi4py", reason="the optional extra `mpi` is not installed")
    assert MPIEXEC.exists(), f"mpi4py is installed but {MPIEXEC} is missing (pip install mpich)"

    def run(args, timeout=120):
        return subprocess.run(
            [str(MPIEXEC), *args], capture_output=True, text=True, timeout=timeout, env=_env()
        )

    return run


def _env():
    return {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # 2 processes x 1 BLAS thread


def worker(out: Path, *args) -> list[str]:
    return [sys.executable, str(WORKER), *args[:1], str(out), *args[1:]]


def test_two_processes_train_like_one_in_float64(mpi, tmp_path):
    """Corpus and example sets, fixed and adaptive depth: the weights of every rank after k
    updates equal those of one process to 1e-10; a NaN on rank 1 makes both ranks skip."""
    done = mpi(["-n", "2", *worker(tmp_path, "runs")])
    assert done.returncode == 0, done.stderr
    for case in RUNS:
        ranks = [np.load(tmp_path / f"{case}.rank{r}.npz") for r in (0, 1)]
        for name in ranks[0].files:
            np.testing.assert_array_equal(ranks[1][name], ranks[0][name])  # the same steps
        assert_close(dict(ranks[0]), train_case(case).model.params, 1e-10)
    skip = dict(np.load(tmp_path / "skip.rank0.npz"))
    reference = train_case("corpus-fixed", poison=True)  # one process: its update 2 is NaN
    assert skip.pop("step") == reference.step == 4
    assert_close(skip, reference.model.params, 1e-10)


def cli_runs(tmp_path, argv, mpi, name):
    """The same `scratchlm` command on 1 process (here, 1 thread) and on 2 (mpiexec)
    -> (its output folder, the two results)."""
    one, two = tmp_path / f"{name}1.safetensors", tmp_path / f"{name}2.safetensors"
    assert main([*argv, "--threads", "1", "--output", str(one)]) == 0
    done = mpi(["-n", "2", *worker(tmp_path, "cli", *argv, "--output", str(two))])
    assert done.returncode == 0, done.stderr
    return one, two, done


def test_two_processes_train_on_a_corpus_like_one(mpi, tmp_path):
    argv = [*corpus(tmp_path), "--steps", "12", "--eval-every", "6", "--batch-size", "6"]
    one, two, done = cli_runs(tmp_path, argv, mpi, "c")
    assert_close(load_model(two).params, load_model(one).params, 1e-5)
    assert done.stdout.count("saved the model") == 1  # rank 0 alone writes and prints
    assert len(two.with_name("c2.metrics.jsonl").read_text().splitlines()) == 2


def test_two_processes_run_both_phases_like_one_with_adaptive_depth(mpi, tmp_path):
    pre, chat = write_sets(tmp_path)
    toml = tmp_path / "act.toml"
    toml.write_text(
        "[model]\nd_model = 16\nn_heads = 2\nd_ff = 24\ndepth = 1\nmax_seq_len = 16\n"
        "adaptive_depth = true\nmax_depth = 3\n[train]\nbatch_size = 5\nlr = 0.01\n"
    )
    argv = ["train", "--pretrain", str(pre), "--chat", str(chat), "--config", str(toml)]
    argv += ["--epochs", "2", "--chat-epochs", "2", "--assistant-only"]
    one, two, _ = cli_runs(tmp_path, argv, mpi, "e")
    assert_close(load_model(two).params, load_model(one).params, 1e-5)
    rows = two.with_name("e2.metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["phase"] for r in rows] == ["pretrain"] * 2 + ["chat"] * 2


@pytest.mark.parametrize("optimizer", ["adamw", "sgd", "lion", "muon"])
def test_a_checkpoint_resumes_on_another_number_of_processes(mpi, tmp_path, monkeypatch, optimizer):
    """2 processes interrupted -> resumed on 1, and 1 interrupted -> resumed on 2: both end with
    the weights of an uninterrupted run (every slot of the optimizer's state is in the
    checkpoint: Adam's m and v, and Muon's momentum beside the m and v of its AdamW part)."""
    base = [*corpus(tmp_path), "--steps", "12", "--eval-every", "6", "--batch-size", "6"]
    base += ["--optimizer", optimizer]
    full = tmp_path / "full.safetensors"
    assert main([*base, "--threads", "1", "--output", str(full)]) == 0
    want = load_model(full).params

    two_then_one = tmp_path / "a.safetensors"
    interrupt = ["--interrupt-at", "12", *base, "--output", str(two_then_one)]
    done = mpi(["-n", "2", *worker(tmp_path, "cli", *interrupt)])
    assert done.returncode == 130, done.stderr  # Ctrl-C on rank 0 ended both
    ckpt = tmp_path / "a.ckpt.safetensors"
    assert load_checkpoint(ckpt)[2]["step"] == 6
    assert (
        main([*base, "--threads", "1", "--output", str(two_then_one), "--resume", str(ckpt)]) == 0
    )
    assert_close(load_model(two_then_one).params, want, 1e-5)

    one_then_two = tmp_path / "b.safetensors"
    monkeypatch.setattr(Trainer, "save", save_interrupted_at(12))
    assert main([*base, "--threads", "1", "--output", str(one_then_two)]) == 130
    monkeypatch.undo()
    ckpt = tmp_path / "b.ckpt.safetensors"
    resume = [*base, "--output", str(one_then_two), "--resume", str(ckpt)]
    done = mpi(["-n", "2", *worker(tmp_path, "cli", *resume)])
    assert done.returncode == 0, done.stderr
    assert_close(load_model(one_then_two).params, want, 1e-5)


def test_killing_one_rank_ends_the_other(mpi, tmp_path):
    argv = [*corpus(tmp_path), "--steps", "100000", "--eval-every", "5", "--batch-size", "4"]
    out = tmp_path / "k.safetensors"
    job = subprocess.Popen(
        [str(MPIEXEC), "-n", "2", *worker(tmp_path, "cli", *argv, "--output", str(out))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    try:
        ckpt = tmp_path / "k.ckpt.safetensors"
        deadline = time.monotonic() + 60
        while not ckpt.exists() and time.monotonic() < deadline:  # training is under way
            time.sleep(0.1)
        assert ckpt.exists() and job.poll() is None
        os.kill(int((tmp_path / "rank1.pid").read_text()), signal.SIGKILL)
        killed = time.monotonic()
        returncode = job.wait(timeout=30)
        assert returncode != 0 and time.monotonic() - killed < 30
        load_checkpoint(ckpt)  # rank 0's last checkpoint is intact
    finally:
        if job.poll() is None:
            job.kill()


def test_bad_data_on_one_rank_stops_both_with_one_error_line(mpi, tmp_path):
    pre, _ = write_sets(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('["The sky is blue . </s>", 42]')
    out = str(tmp_path / "m.safetensors")
    cmd = ["train", "--epochs", "100000", "--output", out, "--pretrain"]
    started = time.monotonic()
    done = mpi(
        ["-n", "1", *worker(tmp_path, "cli", *cmd, str(pre))]  # rank 0 starts training
        + [":", "-n", "1", *worker(tmp_path, "cli", *cmd, str(bad))],  # rank 1 cannot
        timeout=60,
    )
    assert done.returncode != 0 and time.monotonic() - started < 30
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: rank 1: {bad}"), done.stderr


def test_an_error_every_rank_meets_is_printed_once(mpi, tmp_path):
    missing = str(tmp_path / "missing.json")
    done = mpi(["-n", "2", *worker(tmp_path, "cli", "train", "--pretrain", missing)])
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {missing}: no such file"], done.stderr
