"""scratchlm: a Tiny Recursive Model language model written from scratch on NumPy."""

from .config import ModelConfig
from .errors import ScratchLMError
from .model import Model

__version__ = "0.1.0"

__all__ = ["Model", "ModelConfig", "ScratchLMError", "__version__"]
