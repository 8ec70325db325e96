"""scratchlm: a Tiny Recursive Model language model written from scratch on NumPy."""

__version__ = "0.1.0"

from .allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()  # for every caller, not only the command line: see allocator.py

from .config import ModelConfig  # noqa: E402
from .errors import ScratchLMError  # noqa: E402
from .model import Model, load_model  # noqa: E402

__all__ = ["Model", "ModelConfig", "ScratchLMError", "__version__", "load_model"]
