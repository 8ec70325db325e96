"""Model files and training checkpoints: the format of docs/design.md section 5.

Handles: writing a model, or a checkpoint (a model plus optimizer moments and trainer state), as
`.safetensors` (binary) or `.json` (readable), always atomically; reading either back with every
check of the design, in a fixed order, each failing with its own `ModelFileError` subclass and a
message that names the file and the check. Does not handle: other formats, tensors stored in any
dtype but float32, lazy or partial loading, or upgrading old versions (version 1 is the only one).
Nothing here uses pickle, so opening a model file can never run code.

Load checks, in order: the file can be read (a regular file: a FIFO or a device is refused before
the first read, so it cannot block); it parses (however deep or long its JSON: `fileio.parse_json`);
the `format` marker says scratchlm; the `format_version` is not newer than ours; the digests match;
the config is valid; the tensor names and shapes are those of the config; every value is finite;
the tokenizer can be rebuilt.

Checkpoints (checkpoint.py) hold the optimizer's state as extra tensors named
`opt.<slot>.<param>`, plus the JSON entries `optimizer` (its name and scalars, e.g. `{"name":
"adamw", "t": 120}`), `trainer_state` and `checkpoint_sha256`. In a checkpoint, "the model's
tensors" are the ones whose names do not start with `opt.`; only those enter `sha256` and the
model's shape check, so a checkpoint loads as a model with the same `sha256` its model would have
on its own. The bytes of the two formats are fileformats.py's; building a `Model` from what a file
holds is `model.load_model`'s.
"""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .checks import check_text, is_int
from .config import ModelConfig
from .errors import (
    ConfigError,
    InputError,
    ModelFileConfigError,
    ModelFileFormatError,
    ModelFileIntegrityError,
    ModelFileReadError,
    ModelFileShapeError,
    ModelFileTokenizerError,
    ModelFileValueError,
    ModelFileVersionError,
    ModelFileWriteError,
    ScratchLMError,
)
from .fileformats import (
    CHECKPOINT_KEYS,
    FORMAT_MARKER,
    FORMAT_VERSION,
    OPT_PREFIX,
    ModelFile,
    decode_header_json,
    encode,
    extension,
    parse_json_doc,
    parse_safetensors,
    tensors_from_json,
)
from .fileio import atomic_write, check_file, os_errors
from .params import param_shapes

# ---------------------------------------------------------------------------------------- digests


def canon(obj) -> bytes:
    """The canonical JSON bytes that the digests hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hash_tensors(h, tensors: dict[str, np.ndarray]) -> None:
    for name in sorted(tensors):
        t = tensors[name]
        h.update(name.encode() + b"\n" + ",".join(map(str, t.shape)).encode() + b"\n")
        h.update(np.ascontiguousarray(t, dtype="<f4"))  # the buffer itself: no bytes copy


def model_digest(config: dict, tokenizer: dict, tensors: dict[str, np.ndarray]) -> str:
    """`sha256` of docs/design.md section 5.1: anyone can recompute it from the file's content."""
    h = hashlib.sha256(canon(config) + b"\n" + canon(tokenizer) + b"\n")
    _hash_tensors(h, tensors)
    return h.hexdigest()


def checkpoint_digest(
    model_sha256: str, optimizer: dict, trainer_state: dict, opt_tensors: dict[str, np.ndarray]
) -> str:
    """`checkpoint_sha256`: chains the model's digest with everything a checkpoint adds.

    ```python
    h = hashlib.sha256(model_sha256.encode() + b"\\n" + canon(optimizer) + b"\\n"
                       + canon(trainer_state) + b"\\n")
    # then every opt.* tensor in sorted name order, exactly as in the model digest:
    # name + "\\n" + shape joined by "," + "\\n", then its little-endian float32 bytes
    ```
    `model_sha256` is the hex text of `sha256`, which already covers config, tokenizer and weights.
    """
    h = hashlib.sha256(
        model_sha256.encode() + b"\n" + canon(optimizer) + b"\n" + canon(trainer_state) + b"\n"
    )
    _hash_tensors(h, opt_tensors)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------- saving


def save_model(path, model, description: str | None = None) -> str:
    """Write `model` to `path` (`.safetensors` or `.json`) atomically; return its `sha256`."""
    path = Path(path)
    mf = model_file_of(path, model, description)
    with atomic_write(path, ModelFileWriteError) as f:
        f.write(encode(mf))
    return mf.sha256


def model_file_of(path: Path, model, description: str | None) -> ModelFile:
    config = json_value(model.config.to_dict(), "config")
    tokenizer = {}
    if model.tokenizer is not None:
        tokenizer = json_value(model.tokenizer.to_json(), "tokenizer")
    tensors = {n: np.ascontiguousarray(p, dtype=np.float32) for n, p in model.params.items()}
    refuse_non_finite(path, tensors)
    metadata = {
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "architecture": "TRM",
        "num_parameters": sum(t.size for t in tensors.values()),
        "scratchlm_version": _scratchlm_version(),
    }
    if description is not None:
        metadata["description"] = check_text(description, "the description")
    sha256 = model_digest(config, tokenizer, tensors)
    return ModelFile(path, FORMAT_VERSION, config, tokenizer, metadata, tensors, sha256)


def _scratchlm_version() -> str:
    # Imported late: the package's __init__ may import this module before defining __version__.
    from . import __version__

    return __version__


def json_value(obj, what: str):
    """`obj` as a reader of the file will see it after a JSON round trip.

    The digests hash the objects as read back, so we hash (and write) exactly that: tuples become
    lists, integer keys become strings (which also changes how sort_keys orders them).
    """
    if not isinstance(obj, dict):
        raise InputError(f"{what} must be a dict, got {type(obj).__name__}")
    try:
        return json.loads(json.dumps(obj, ensure_ascii=False, default=_numpy_to_json))
    except (TypeError, ValueError) as e:
        raise InputError(f"{what} cannot be stored as JSON: {e}") from e


def _numpy_to_json(obj):
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def refuse_non_finite(path: Path, tensors: dict[str, np.ndarray]) -> None:
    # Loading refuses non-finite values, so writing them would only make a file nobody can open.
    bad = _first_non_finite(tensors)
    if bad:
        raise ModelFileValueError(f"{path}: refusing to write the file: {bad}")


# ---------------------------------------------------------------------------------------- reading


def read_model_file(path) -> ModelFile:
    """Read a model or checkpoint file and run the checks up to the digests (both, if present)."""
    path = Path(path)
    suffix = extension(path)
    data = _read_bytes(path)
    if suffix == ".json":
        doc = parse_json_doc(path, data)
        format_version = _check_marker_and_version(path, doc)
        tensors = tensors_from_json(path, doc.get("tensors"))
    else:
        doc, tensors = parse_safetensors(path, data)
        format_version = _check_marker_and_version(path, doc)
        doc = decode_header_json(path, doc)
    mf = _model_file_from_doc(path, format_version, doc, tensors)
    _verify_digests(mf)
    return mf


def _read_bytes(path: Path) -> bytes:
    check_file(path, ModelFileReadError)  # a FIFO or a device would block or never end
    with os_errors(path, ModelFileReadError, "read the file"):
        return path.read_bytes()


def _check_marker_and_version(path: Path, doc: dict) -> int:
    marker = doc.get("format")
    if marker != FORMAT_MARKER:
        raise ModelFileFormatError(
            f"{path}: not a scratchlm model file: the format marker is {marker!r}, "
            f"expected {FORMAT_MARKER!r}"
        )
    version = doc.get("format_version")
    if isinstance(version, str) and version.isdecimal():  # safetensors headers hold text
        version = int(version)
    if not is_int(version) or version < 1:
        raise ModelFileFormatError(f"{path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileVersionError(
            f"{path}: format_version {version} is newer than this scratchlm "
            f"({_scratchlm_version()}) can read (it reads format_version {FORMAT_VERSION}); "
            "upgrade scratchlm to load this file"
        )
    return version


def _model_file_from_doc(path: Path, format_version: int, doc: dict, tensors: dict) -> ModelFile:
    for key in ("config", "tokenizer", "metadata"):
        if not isinstance(doc.get(key), dict):
            raise ModelFileFormatError(f"{path}: the entry {key!r} is missing or not a JSON object")
    _require_digest_text(path, doc, "sha256")
    config, tokenizer, metadata = doc["config"], doc["tokenizer"], doc["metadata"]
    mf = ModelFile(path, format_version, config, tokenizer, metadata, tensors, doc["sha256"])
    if "checkpoint_sha256" in doc:
        _require_digest_text(path, doc, "checkpoint_sha256")
        for key in ("optimizer", "trainer_state"):
            if not isinstance(doc.get(key), dict):
                raise ModelFileFormatError(
                    f"{path}: checkpoint entry {key!r} is missing or not a JSON object"
                )
        mf.tensors = {n: t for n, t in tensors.items() if not n.startswith(OPT_PREFIX)}
        mf.extra = {key: doc[key] for key in CHECKPOINT_KEYS}
        mf.extra["tensors"] = {n: t for n, t in tensors.items() if n.startswith(OPT_PREFIX)}
    return mf


def _require_digest_text(path: Path, doc: dict, key: str) -> None:
    if not isinstance(doc.get(key), str):
        raise ModelFileFormatError(f"{path}: the entry {key!r} is missing or not a string")


def _verify_digests(mf: ModelFile) -> None:
    computed = model_digest(mf.config, mf.tokenizer, mf.tensors)
    _compare_digest(mf.path, "sha256", mf.sha256, computed)
    if mf.is_checkpoint:
        x = mf.extra
        computed = checkpoint_digest(mf.sha256, x["optimizer"], x["trainer_state"], x["tensors"])
        _compare_digest(mf.path, "checkpoint_sha256", x["checkpoint_sha256"], computed)


def _compare_digest(path: Path, key: str, stored: str, computed: str) -> None:
    if stored != computed:
        raise ModelFileIntegrityError(
            f"{path}: integrity check failed: the stored {key} is {stored[:16]}..., but the "
            f"content hashes to {computed[:16]}...; the file was modified or corrupted"
        )


# ------------------------------------------------------------------------- checks after the digest


def checked_model_parts(mf: ModelFile):
    """The checks after the digests: the config is valid, the tensors are those of the config and
    finite, the tokenizer can be rebuilt -> (ModelConfig, tokenizer or None, tensors)."""
    try:
        config = ModelConfig.from_dict(mf.config)
    except ConfigError as e:
        raise ModelFileConfigError(f"{mf.path}: config check failed: {e}") from e
    check_shapes(mf.path, mf.tensors, param_shapes(config))
    check_finite(mf.path, mf.tensors)
    return config, _rebuild_tokenizer(mf), mf.tensors


def check_shapes(path: Path, tensors: dict, expected: dict[str, tuple[int, ...]]) -> None:
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise ModelFileShapeError(
            f"{path}: shape check failed: missing tensor(s) {', '.join(missing)}"
        )
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise ModelFileShapeError(
            f"{path}: shape check failed: tensor(s) {', '.join(unexpected)} are not used by "
            "this config"
        )
    for name, shape in expected.items():
        found = tensors[name].shape
        if found != tuple(shape):
            raise ModelFileShapeError(
                f"{path}: shape check failed: tensor {name!r} has shape {found}, "
                f"the config expects {tuple(shape)}"
            )


def check_finite(path: Path, tensors: dict[str, np.ndarray]) -> None:
    bad = _first_non_finite(tensors)
    if bad:
        raise ModelFileValueError(f"{path}: value check failed: {bad}")


def _first_non_finite(tensors: dict[str, np.ndarray]) -> str | None:
    """Describe the first tensor (in name order) holding NaN or infinity, or return None."""
    for name in sorted(tensors):
        finite = np.isfinite(tensors[name])
        if not finite.all():
            first = np.unravel_index(np.argmin(finite), finite.shape)
            count = finite.size - np.count_nonzero(finite)
            index = tuple(int(i) for i in first)
            return f"tensor {name!r} has {count} non-finite value(s), the first at index {index}"
    return None


def _rebuild_tokenizer(mf: ModelFile):
    if not mf.tokenizer:
        return None
    from .tokenizers import tokenizer_from_json  # late: keeps file reading free of tokenizer code

    try:
        return tokenizer_from_json(mf.tokenizer)
    except ScratchLMError as e:
        raise ModelFileTokenizerError(f"{mf.path}: tokenizer check failed: {e}") from e
