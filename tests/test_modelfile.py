"""Model files and checkpoints: round trips, the digest of docs/design.md section 5.1, every load check,
and atomic writes.

"""

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from scratchlm import Model
from scratchlm.checkpoint import load_checkpoint, save_checkpoint
from scratchlm.config import ModelConfig
from scratchlm.errors import (
    InputError,
    ModelFileConfigError,
    ModelFileError,
    ModelFileFormatError,
    ModelFileIntegrityError,
    ModelFileReadError,
    ModelFileShapeError,
    ModelFileTokenizerError,
    ModelFileValueError,
    ModelFileVersionError,
    ModelFileWriteError,
)
from scratchlm.examples import text_batcher
from scratchlm.model import load_model
from scratchlm.modelfile import model_digest, read_model_file, save_model
from scratchlm.optim import AdamW
from scratchlm.params import param_shapes
from scratchlm.tokenizers import WordTokenizer
from scratchlm.trainer import TrainConfig, Trainer

CONFIG = ModelConfig(
    vocab_size=11, d_model=8, n_heads=2, d_ff=16, depth=2, max_seq_len=6, cope_max_pos=4
)
FORMATS = [".safetensors", ".json"]


def make_model(seed=1, tokenizer=True):
    words = ["<pad>", "<unk>", "</s>"] + [f"w{i}" for i in range(8)]
    return Model(CONFIG, WordTokenizer(words) if tokenizer else None, seed=seed)


def design_digest(config, tokenizer, tensors):
    """The digest exactly as docs/design.md section 5.1 writes it: an outside recomputation."""

    def canon(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    h = hashlib.sha256(canon(config) + b"\n" + canon(tokenizer) + b"\n")
    for name in sorted(tensors):
        t = tensors[name]
        h.update(name.encode() + b"\n" + ",".join(map(str, t.shape)).encode() + b"\n")
        h.update(np.ascontiguousarray(t, dtype="<f4").tobytes())
    return h.hexdigest()


def json_tensors(doc):
    return {
        name: np.array(t["data"], dtype=np.float32).reshape(t["shape"])
        for name, t in doc["tensors"].items()
    }


def rewrite_json(path, edit, fix_digest=True):
    """Edit a saved .json model; with fix_digest, store the digest of the edited content so that
    only a later check can catch the edit."""
    doc = json.loads(path.read_text())
    edit(doc)
    if fix_digest:
        doc["sha256"] = design_digest(doc["config"], doc["tokenizer"], json_tensors(doc))
    path.write_text(json.dumps(doc))


def safetensors_data_start(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


# ------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip_gives_identical_params(tmp_path, ext):
    model = make_model()
    path = tmp_path / f"m{ext}"
    digest = save_model(path, model, description="a test model")
    loaded = load_model(path)
    assert loaded.config == model.config
    assert loaded.tokenizer.tokens == model.tokenizer.tokens
    assert list(loaded.params) == list(param_shapes(CONFIG))
    for name, p in model.params.items():
        assert loaded.params[name].dtype == np.float32
        np.testing.assert_array_equal(loaded.params[name], p)
    assert read_model_file(path).sha256 == digest
    ids = np.array([[3, 4, 5, 2]])
    np.testing.assert_array_equal(loaded.logits(ids), model.logits(ids))


@pytest.mark.parametrize("ext", FORMATS)
def test_model_save_round_trips(tmp_path, ext):
    """`Model.save`, the method of the Python API, writes what `load_model` reads back exactly."""
    model = make_model()
    path = tmp_path / f"m{ext}"
    digest = model.save(path, description="saved by the method")
    loaded = load_model(path)
    assert read_model_file(path).sha256 == digest
    assert read_model_file(path).metadata["description"] == "saved by the method"
    assert loaded.config == model.config
    for name, p in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], p)


def test_both_formats_have_the_same_digest(tmp_path):
    model = make_model()
    a = save_model(tmp_path / "m.safetensors", model)
    b = save_model(tmp_path / "m.json", model)
    tokenizer = model.tokenizer.to_json()
    assert a == b == model_digest(model.config.to_dict(), tokenizer, model.params)


def test_float64_load_and_bare_model(tmp_path):
    model = make_model(tokenizer=False)
    path = tmp_path / "bare.json"
    save_model(path, model)
    assert json.loads(path.read_text())["tokenizer"] == {}
    loaded = load_model(path, dtype="float64")
    assert loaded.tokenizer is None
    assert loaded.params["head.w"].dtype == np.float64
    np.testing.assert_array_equal(loaded.params["head.w"], model.params["head.w"])


def test_metadata(tmp_path):
    import scratchlm

    path = tmp_path / "m.safetensors"
    save_model(path, make_model(), description="tiny")
    meta = read_model_file(path).metadata
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["created_at"])
    assert meta["architecture"] == "TRM"
    assert meta["num_parameters"] == sum(int(np.prod(s)) for s in param_shapes(CONFIG).values())
    assert meta["scratchlm_version"] == scratchlm.__version__
    assert meta["description"] == "tiny"


def test_json_digest_recomputes_from_the_file_alone(tmp_path):
    path = tmp_path / "m.json"
    save_model(path, make_model())
    doc = json.loads(path.read_text())
    assert doc["format"] == "scratchlm" and doc["format_version"] == 1
    assert doc["sha256"] == design_digest(doc["config"], doc["tokenizer"], json_tensors(doc))


def test_safetensors_digest_recomputes_from_the_file_alone(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, make_model())
    with safetensors.safe_open(str(path), framework="np") as f:
        header = f.metadata()
    tensors = safetensors.numpy.load_file(str(path))
    assert header["format"] == "scratchlm" and header["format_version"] == "1"
    assert set(tensors) == set(param_shapes(CONFIG))
    config, tokenizer = json.loads(header["config"]), json.loads(header["tokenizer"])
    assert header["sha256"] == design_digest(config, tokenizer, tensors)
    assert json.loads(header["metadata"])["architecture"] == "TRM"


# ------------------------------------------------------------------------------------ load checks


def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(ModelFileReadError, match="nope.safetensors.*no such file"):
        load_model(path)


def test_unknown_extension_names_the_path(tmp_path):
    with pytest.raises(ModelFileFormatError, match=r"m\.bin.*extension"):
        save_model(tmp_path / "m.bin", make_model())
    with pytest.raises(ModelFileFormatError, match=r"m\.bin.*extension"):
        load_model(tmp_path / "m.bin")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", FORMATS)
def test_truncated_file_is_refused_by_the_parser(tmp_path, ext):
    path = tmp_path / f"m{ext}"
    save_model(path, make_model())
    data = path.read_bytes()
    for keep in (len(data) - 2, len(data) // 2, 5):
        path.write_bytes(data[:keep])
        with pytest.raises(ModelFileFormatError, match=f"m{ext}.*parse"):
            load_model(path)


def test_garbage_json_is_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(ModelFileFormatError, match="not a scratchlm model file"):
        load_model(path)


def test_flipped_byte_in_tensor_data_fails_the_digest(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, make_model())
    good = path.read_bytes()
    start = safetensors_data_start(good)
    for pos in range(start, len(good), (len(good) - start) // 40):
        bad = bytearray(good)
        bad[pos] ^= 0x01
        path.write_bytes(bytes(bad))
        with pytest.raises(ModelFileIntegrityError, match="m.safetensors: integrity check"):
            load_model(path)


def test_edited_json_weight_fails_the_digest(tmp_path):
    path = tmp_path / "m.json"
    save_model(path, make_model())

    def nudge(doc):
        doc["tensors"]["block.attn.wq"]["data"][3] += 0.5

    rewrite_json(path, nudge, fix_digest=False)
    with pytest.raises(ModelFileIntegrityError, match="sha256"):
        load_model(path)


def test_wrong_marker_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    safetensors.numpy.save_file({"x": np.zeros(2, np.float32)}, str(path))
    with pytest.raises(ModelFileFormatError, match="other.safetensors.*format marker"):
        load_model(path)


@pytest.mark.parametrize("ext", FORMATS)
def test_newer_format_version_is_refused(tmp_path, ext):
    path = tmp_path / f"m{ext}"
    save_model(path, make_model())
    if ext == ".json":
        rewrite_json(path, lambda doc: doc.update(format_version=2), fix_digest=False)
    else:
        with safetensors.safe_open(str(path), framework="np") as f:
            header = f.metadata()
        tensors = safetensors.numpy.load_file(str(path))
        safetensors.numpy.save_file(tensors, str(path), metadata=header | {"format_version": "2"})
    with pytest.raises(ModelFileVersionError, match=f"m{ext}.*format_version 2.*reads.*1"):
        load_model(path)


def test_invalid_config_is_refused(tmp_path):
    path = tmp_path / "m.json"
    save_model(path, make_model())
    rewrite_json(path, lambda doc: doc["config"].update(n_heads=3))
    with pytest.raises(ModelFileConfigError, match="m.json: config check failed.*divisible"):
        load_model(path)


def test_shape_mismatch_names_the_tensor_and_both_shapes(tmp_path):
    path = tmp_path / "m.json"
    save_model(path, make_model())

    def drop_a_row(doc):
        head = doc["tensors"]["head.w"]
        head["shape"] = [7, 11]
        head["data"] = head["data"][: 7 * 11]

    rewrite_json(path, drop_a_row)
    with pytest.raises(ModelFileShapeError, match=r"m.json.*'head.w'.*\(7, 11\).*\(8, 11\)"):
        load_model(path)


def test_missing_tensor_is_a_shape_error(tmp_path):
    path = tmp_path / "m.json"
    save_model(path, make_model())
    rewrite_json(path, lambda doc: doc["tensors"].pop("pos_emb"))
    with pytest.raises(ModelFileShapeError, match="missing tensor.*pos_emb"):
        load_model(path)


def test_nan_weight_is_refused_by_the_value_check(tmp_path):
    path = tmp_path / "m.json"
    save_model(path, make_model())

    def poison(doc):
        doc["tensors"]["block.ffn.w2"]["data"][17] = float("nan")

    rewrite_json(path, poison)  # the digest is right: only the value check can object
    with pytest.raises(ModelFileValueError, match=r"m.json.*'block.ffn.w2'.*index \(2, 1\)"):
        load_model(path)


def test_bad_tokenizer_is_refused(tmp_path):
    path = tmp_path / "m.json"
    save_model(path, make_model())
    rewrite_json(path, lambda doc: doc["tokenizer"].update(type="mystery"))
    with pytest.raises(ModelFileTokenizerError, match="m.json: tokenizer check failed"):
        load_model(path)


def test_non_finite_model_is_not_written(tmp_path):
    model = make_model()
    model.params["head.w"][0, 0] = np.inf
    with pytest.raises(ModelFileValueError, match="'head.w'"):
        save_model(tmp_path / "m.safetensors", model)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ checkpoints


def trained_state(model):
    opt = AdamW(model.params, lr=1e-2)
    rng = np.random.default_rng(7)
    for _ in range(3):
        opt.step({n: rng.standard_normal(p.shape).astype(p.dtype) for n, p in model.params.items()})
    trainer_state = {
        "step": np.int64(3),  # numpy scalars are accepted and stored as plain numbers
        "epoch": 1,
        "phase": "pretrain",
        "best_loss": 2.5,
        "rng": rng.bit_generator.state,
    }
    return opt, trainer_state, rng


@pytest.mark.parametrize("ext", FORMATS)
def test_checkpoint_round_trip(tmp_path, ext):
    model = make_model()
    opt, trainer_state, rng = trained_state(model)
    path = tmp_path / f"ckpt{ext}"
    save_checkpoint(path, model, opt.state_dict(), trainer_state)

    loaded, opt_state, state = load_checkpoint(path)
    for name, p in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], p)
    resumed = AdamW(loaded.params, lr=1e-2)
    resumed.load_state_dict(opt_state)
    assert resumed.t == 3
    for name in model.params:
        np.testing.assert_array_equal(resumed.m[name], opt.m[name])
        np.testing.assert_array_equal(resumed.v[name], opt.v[name])
    assert state["step"] == 3 and state["phase"] == "pretrain" and state["best_loss"] == 2.5
    restored = np.random.default_rng()
    restored.bit_generator.state = state["rng"]
    assert restored.random() == rng.random()


@pytest.mark.parametrize("ext", FORMATS)
def test_checkpoint_loads_as_the_model_with_the_same_digest(tmp_path, ext):
    model = make_model()
    opt, trainer_state, _ = trained_state(model)
    save_checkpoint(tmp_path / f"ckpt{ext}", model, opt.state_dict(), trainer_state)
    plain = save_model(tmp_path / f"m{ext}", model)
    ckpt = read_model_file(tmp_path / f"ckpt{ext}")
    assert ckpt.is_checkpoint and ckpt.sha256 == plain
    assert set(ckpt.tensors) == set(param_shapes(CONFIG))
    loaded = load_model(tmp_path / f"ckpt{ext}")
    np.testing.assert_array_equal(loaded.params["head.w"], model.params["head.w"])


def test_checkpoint_digest_covers_the_optimizer_part(tmp_path):
    model = make_model()
    opt, trainer_state, _ = trained_state(model)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt.state_dict(), trainer_state)
    data = bytearray(path.read_bytes())
    start = safetensors_data_start(data)
    offset = json.loads(data[8:start])["opt.v.head.w"]["data_offsets"][0]
    data[start + offset + 1] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileIntegrityError, match="checkpoint_sha256"):
        load_checkpoint(path)


def test_edited_trainer_state_fails_the_checkpoint_digest(tmp_path):
    model = make_model()
    opt, trainer_state, _ = trained_state(model)
    path = tmp_path / "ckpt.json"
    save_checkpoint(path, model, opt.state_dict(), trainer_state)
    rewrite_json(path, lambda doc: doc["trainer_state"].update(step=99), fix_digest=False)
    with pytest.raises(ModelFileIntegrityError, match="checkpoint_sha256"):
        load_checkpoint(path)


def test_plain_model_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "m.json"
    save_model(path, make_model())
    with pytest.raises(ModelFileFormatError, match="not a training checkpoint"):
        load_checkpoint(path)


def test_trainer_state_must_be_json(tmp_path):
    model = make_model()
    opt, _, _ = trained_state(model)
    with pytest.raises(InputError, match="trainer_state"):
        save_checkpoint(tmp_path / "c.json", model, opt.state_dict(), {"when": object()})


@pytest.mark.parametrize(
    ("target", "error", "raised"),
    [
        ("fsync", KeyboardInterrupt(), KeyboardInterrupt),  # killed mid-write
        ("replace", OSError(28, "No space left on device"), ModelFileWriteError),
    ],
)
def test_interrupted_checkpoint_never_replaces_the_good_one(
    tmp_path, monkeypatch, target, error, raised
):
    model = make_model()
    opt, trainer_state, _ = trained_state(model)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt.state_dict(), trainer_state)
    good = path.read_bytes()

    def fail(*args, **kwargs):
        raise error

    trainer_state["step"] = 4
    with monkeypatch.context() as patch, pytest.raises(raised):
        patch.setattr(os, target, fail)
        save_checkpoint(path, model, opt.state_dict(), trainer_state)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]  # no temp file left
    assert load_checkpoint(path)[2]["step"] == 3


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_file_gets_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        save_model(tmp_path / "m.json", make_model())
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644


def test_unwritable_folder_is_a_write_error(tmp_path):
    with pytest.raises(ModelFileWriteError, match="cannot write"):
        save_model(tmp_path / "no" / "such" / "m.json", make_model())


def test_every_model_file_error_is_a_model_file_error():
    for cls in (ModelFileReadError, ModelFileFormatError, ModelFileVersionError):
        assert issubclass(cls, ModelFileError)


# ------------------------------------------------------------- files written before the variants

BEFORE = Path(__file__).parent / "data/before-variants"  # written by commit 62f926a (README.md)


@pytest.mark.parametrize("name", ["fixed", "adaptive"])
@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
def test_model_files_written_before_the_variants_load_and_give_the_same_logits(name, suffix):
    expected = json.loads((BEFORE / "expected_logits.json").read_text())
    model = load_model(BEFORE / f"{name}{suffix}")
    assert (model.config.norm, model.config.position, model.config.ffn) == ("dyt", "cope", "swiglu")
    logits = model.logits(np.array(expected["ids"]))
    np.testing.assert_array_equal(logits, np.array(expected[name], dtype=np.float32))


def test_an_adam_checkpoint_written_before_the_optimizers_resumes_bit_for_bit():
    """The checkpoint names no optimizer: it resumes as adamw, and a third epoch gives exactly the
    weights that commit trained."""
    model, opt_state, state = load_checkpoint(BEFORE / "fixed.ckpt.safetensors")
    assert opt_state["name"] == "adamw" and set(opt_state) == {"name", "t", "m", "v"}
    trainer = Trainer(model, TrainConfig(epochs=3, lr=1e-2, batch_size=3))
    trainer.resume(opt_state, state)
    texts = [
        "the sun is a star . </s>",
        "water is wet and cold . </s>",
        "a cat is an animal . </s>",
    ]
    batcher = text_batcher(model.tokenizer, texts, 3, 16, 0)
    trainer.fit_examples("pre", batcher, start_epoch=state["epoch"])
    then = load_model(BEFORE / "fixed-resumed.safetensors")
    for name, p in then.params.items():
        np.testing.assert_array_equal(model.params[name], p, err_msg=name)
