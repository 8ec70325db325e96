"""Training checkpoints: a model file (modelfile.py) plus the optimizer's state and the trainer's.

A checkpoint is a model file whose extra tensors `opt.<slot>.<param>` hold the optimizer's slots
(AdamW: `opt.m.*`, `opt.v.*`; SGD and Lion: `opt.m.*`; Muon: `opt.m.*` for every parameter and
`opt.v.*` for those it updates with AdamW), with three more JSON entries: `optimizer` (the
optimizer's name and scalars, e.g. `{"name": "adamw", "t": 120}`), `trainer_state` (step, epoch,
phase, RNG state, ...) and `checkpoint_sha256` over everything. It loads as a model with the same
`sha256` its model would have on its own. A checkpoint written before there were other optimizers
has no name in its `optimizer` entry: it is Adam's. Written atomically, like every model file.
"""

from pathlib import Path

import numpy as np

from .errors import InputError, ModelFileFormatError, ModelFileWriteError
from .fileio import atomic_write
from .model import Model
from .modelfile import (
    OPT_PREFIX,
    check_finite,
    check_shapes,
    checked_model_parts,
    checkpoint_digest,
    encode,
    json_value,
    model_file_of,
    read_model_file,
    refuse_non_finite,
)
from .optim import OPTIMIZERS
from .params import param_shapes

DEFAULT_OPTIMIZER = "adamw"  # the optimizer of a checkpoint that does not name one


def save_checkpoint(path, model, opt_state: dict, trainer_state: dict) -> str:
    """Write a training checkpoint atomically; return its `checkpoint_sha256`.

    `opt_state` is an optimizer's `state_dict()`: its dict entries (slot -> {param: array}) become
    the `opt.*` tensors and the rest (name, "t", ...) the `optimizer` entry. `trainer_state` is any
    JSON-serialisable dict; numpy scalars and arrays in it become numbers and lists.
    """
    path = Path(path)
    if not isinstance(opt_state, dict) or "t" not in opt_state:
        raise InputError("opt_state must be an optimizer's state_dict(), with its step count 't'")
    slots = {k: v for k, v in opt_state.items() if isinstance(v, dict)}
    if any("." in slot for slot in slots):
        raise InputError(f"optimizer slot names cannot hold a '.': {sorted(slots)}")
    mf = model_file_of(path, model, description=None)
    opt_tensors = {
        f"{OPT_PREFIX}{slot}.{name}": np.ascontiguousarray(a, dtype=np.float32)
        for slot, arrays in slots.items()
        for name, a in arrays.items()
    }
    refuse_non_finite(path, opt_tensors)
    optimizer = json_value({k: v for k, v in opt_state.items() if k not in slots}, "opt_state")
    trainer_state = json_value(trainer_state, "trainer_state")
    mf.extra = {
        "optimizer": optimizer,
        "trainer_state": trainer_state,
        "checkpoint_sha256": checkpoint_digest(mf.sha256, optimizer, trainer_state, opt_tensors),
        "tensors": opt_tensors,
    }
    with atomic_write(path, ModelFileWriteError) as f:
        f.write(encode(mf))
    return mf.extra["checkpoint_sha256"]


def load_checkpoint(path, dtype="float32") -> tuple:
    """Load a checkpoint: return `(model, opt_state, trainer_state)`.

    `opt_state` has the shape of the optimizer's `state_dict()` (its name, "t", the slots), ready
    for `load_state_dict`; both digests have been verified, and every slot the named optimizer
    keeps is there with the shapes of the parameters.
    """
    mf = read_model_file(path)
    if not mf.is_checkpoint:
        raise ModelFileFormatError(
            f"{mf.path}: not a training checkpoint: it is a model file without optimizer state"
        )
    config, tokenizer, tensors = checked_model_parts(mf)
    model = Model(config, tokenizer, dtype=dtype, params=tensors)
    opt_state = {"name": DEFAULT_OPTIMIZER, **mf.extra["optimizer"]}
    name = opt_state["name"]
    optimizer = OPTIMIZERS.get(name) if isinstance(name, str) else None
    if optimizer is None:
        raise ModelFileFormatError(
            f"{mf.path}: the checkpoint's optimizer {name!r} is none of {', '.join(OPTIMIZERS)}"
        )
    shapes = param_shapes(config)
    expected = {
        f"{OPT_PREFIX}{slot}.{name}": shapes[name]
        for slot, names in optimizer.slot_names(shapes).items()
        for name in names
    }
    opt_tensors = mf.extra["tensors"]
    check_shapes(mf.path, opt_tensors, expected)
    check_finite(mf.path, opt_tensors)
    for slot, names in optimizer.slot_names(shapes).items():
        opt_state[slot] = {
            n: opt_tensors[f"{OPT_PREFIX}{slot}.{n}"].astype(model.dtype) for n in names
        }
    return model, opt_state, mf.extra["trainer_state"]
