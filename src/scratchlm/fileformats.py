"""The bytes of the two model-file formats (docs/design.md section 5): `.safetensors`, binary,
with the JSON objects as text in its header metadata, and `.json`, readable, with every tensor as a
flat list of numbers. `encode` writes a `ModelFile` in the format its extension names; the
`parse_*` and `*_from_json` functions read the bytes back into the header's objects and the
tensors, each problem a `ModelFileFormatError` that names the file. What the content must then
satisfy (marker, version, digests, shapes) is modelfile.py's job.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

from .checks import is_int
from .errors import ModelFileFormatError
from .fileio import parse_json

FORMAT_MARKER = "scratchlm"
FORMAT_VERSION = 1
EXTENSIONS = (".safetensors", ".json")
OPT_PREFIX = "opt."
CHECKPOINT_KEYS = ("optimizer", "trainer_state", "checkpoint_sha256")


@dataclass
class ModelFile:
    """The content of a model file that passed the parse, marker, version and digest checks."""

    path: Path
    format_version: int
    config: dict
    tokenizer: dict  # {} for a model saved without a tokenizer
    metadata: dict
    tensors: dict[str, np.ndarray]  # the model's parameters, float32
    sha256: str
    # Checkpoints only: "optimizer", "trainer_state", "checkpoint_sha256" and "tensors" (opt.*).
    extra: dict = field(default_factory=dict)

    @property
    def is_checkpoint(self) -> bool:
        return bool(self.extra)


def encode(mf: ModelFile) -> bytes:
    return _encode_json(mf) if extension(mf.path) == ".json" else _encode_safetensors(mf)


def _encode_safetensors(mf: ModelFile) -> bytes:
    # safetensors header metadata is a str -> str map, so the objects go in as JSON text.
    header = {
        "format": FORMAT_MARKER,
        "format_version": str(mf.format_version),
        "config": json.dumps(mf.config, ensure_ascii=False),
        "tokenizer": json.dumps(mf.tokenizer, ensure_ascii=False),
        "metadata": json.dumps(mf.metadata, ensure_ascii=False),
        "sha256": mf.sha256,
    }
    if mf.is_checkpoint:
        header["optimizer"] = json.dumps(mf.extra["optimizer"], ensure_ascii=False)
        header["trainer_state"] = json.dumps(mf.extra["trainer_state"], ensure_ascii=False)
        header["checkpoint_sha256"] = mf.extra["checkpoint_sha256"]
    return safetensors.numpy.save(mf.tensors | mf.extra.get("tensors", {}), metadata=header)


def _encode_json(mf: ModelFile) -> bytes:
    doc = {
        "format": FORMAT_MARKER,
        "format_version": mf.format_version,
        "metadata": mf.metadata,
        "config": mf.config,
        "tokenizer": mf.tokenizer,
        "sha256": mf.sha256,
    }
    if mf.is_checkpoint:
        doc.update({key: mf.extra[key] for key in CHECKPOINT_KEYS})
    # indent=2 keeps the small parts readable, but would give every number of every matrix a line
    # of its own; so each tensor is written on one line and spliced in as the last entry.
    head = json.dumps(doc, indent=2, ensure_ascii=False)
    lines = [
        f"    {json.dumps(name, ensure_ascii=False)}: {_tensor_json(t)}"
        for name, t in (mf.tensors | mf.extra.get("tensors", {})).items()
    ]
    tail = ',\n  "tensors": {\n' + ",\n".join(lines) + "\n  }\n}\n"
    return (head.removesuffix("\n}") + tail).encode()


def _tensor_json(t: np.ndarray) -> str:
    # Each float32 goes out as the double that equals it exactly, so loading is bit-exact
    # (0.1f reads 0.10000000149011612: longer than "0.1", but never off by one ulp).
    return json.dumps({"shape": list(t.shape), "data": t.astype(np.float64).ravel().tolist()})


def extension(path: Path) -> str:
    extension = path.suffix.lower()
    if extension not in EXTENSIONS:
        raise ModelFileFormatError(
            f"{path}: unknown model file extension {path.suffix!r}: "
            "use .safetensors (binary) or .json (readable)"
        )
    return extension


def parse_json_doc(path: Path, data: bytes) -> dict:
    try:
        doc = parse_json(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ModelFileFormatError(
            f"{path}: cannot parse the file: not UTF-8 text (byte {e.start})"
        ) from e
    except json.JSONDecodeError as e:
        ends_early = e.pos >= len(e.doc.rstrip())
        raise ModelFileFormatError(
            f"{path}: cannot parse the file: invalid JSON at line {e.lineno} column {e.colno} "
            f"({e.msg}){'; the file is truncated' if ends_early else ''}"
        ) from e
    if not isinstance(doc, dict):
        raise ModelFileFormatError(
            f"{path}: not a scratchlm model file: the JSON is a {type(doc).__name__}, not an object"
        )
    return doc


def parse_safetensors(path: Path, data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Return the header metadata (str -> str) and the tensors of a safetensors file."""
    try:
        entries = safetensors.deserialize(data)
    except safetensors.SafetensorError as e:
        raise ModelFileFormatError(
            f"{path}: cannot parse the file as safetensors ({e}); is it damaged or truncated?"
        ) from e
    tensors = {}
    for name, entry in entries:
        if entry["dtype"] != "F32":
            raise ModelFileFormatError(
                f"{path}: cannot parse the file: tensor {name!r} is stored as {entry['dtype']}, "
                "scratchlm model files store F32"
            )
        tensors[name] = np.frombuffer(entry["data"], dtype="<f4").reshape(entry["shape"])
    # The library has validated the header already; its metadata is not returned, so read it:
    # an 8-byte little-endian length, then that many bytes of JSON.
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    return header.get("__metadata__") or {}, tensors


def decode_header_json(path: Path, header: dict) -> dict:
    """Parse the JSON-text entries of a safetensors header into objects."""
    doc = dict(header)
    for key in ("config", "tokenizer", "metadata", "optimizer", "trainer_state"):
        if key in doc:
            try:
                doc[key] = parse_json(doc[key])
            except json.JSONDecodeError as e:
                raise ModelFileFormatError(
                    f"{path}: cannot parse the header entry {key!r}: invalid JSON ({e})"
                ) from e
    return doc


def tensors_from_json(path: Path, entries) -> dict[str, np.ndarray]:
    if not isinstance(entries, dict):
        raise ModelFileFormatError(f"{path}: 'tensors' is missing or not a JSON object")
    return {name: _tensor_from_json(path, name, entry) for name, entry in entries.items()}


def _tensor_from_json(path: Path, name: str, entry) -> np.ndarray:
    shape = entry.get("shape") if isinstance(entry, dict) else None
    data = entry.get("data") if isinstance(entry, dict) else None
    sizes_ok = isinstance(shape, list) and all(is_int(n) and n >= 0 for n in shape)
    if not sizes_ok or not isinstance(data, list):
        raise ModelFileFormatError(
            f"{path}: tensor {name!r} needs a 'shape' list of sizes and a 'data' list of numbers"
        )
    try:
        flat = np.array(data)
    except ValueError:  # ragged nesting
        flat = None
    if flat is None or flat.ndim != 1 or flat.dtype.kind not in "iuf":
        raise ModelFileFormatError(f"{path}: tensor {name!r}: 'data' is not a flat list of numbers")
    if flat.size != math.prod(shape):
        raise ModelFileFormatError(
            f"{path}: tensor {name!r} has {flat.size} numbers but its shape {tuple(shape)} "
            f"needs {math.prod(shape)}"
        )
    with np.errstate(over="ignore"):  # an out-of-range number becomes inf: the value check says so
        return flat.astype(np.float32).reshape(shape)
