"""The optimizers, named in ONE place, and what they all use (schedule.py).

`TrainConfig.optimizer` picks one of `OPTIMIZERS` by name; every optimizer takes the parameters
(updated in place), `lr`, `betas`, `eps`, `weight_decay` and `no_decay` (base.py), and keeps its
state in slots a checkpoint stores. To add one, write its file (a subclass of `Optimizer` with
its `update`, and `slot_names` if it keeps more than a momentum per parameter) and add ONE line
to `OPTIMIZERS`.
"""

from .adamw import AdamW
from .base import Optimizer
from .lion import Lion
from .muon import Muon
from .schedule import accumulate, clip_grad_norm, lr_at
from .sgd import SGD

OPTIMIZERS: dict[str, type[Optimizer]] = {"adamw": AdamW, "sgd": SGD, "lion": Lion, "muon": Muon}

__all__ = ["OPTIMIZERS", "SGD", "AdamW", "Lion", "Muon", "Optimizer"]
__all__ += ["accumulate", "clip_grad_norm", "lr_at"]
