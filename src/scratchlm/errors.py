"""The one exception hierarchy of scratchlm.

Every error we raise on purpose derives from `ScratchLMError`, so a caller (and the CLI, which turns
these into one `error: ...` line and exit code 2) can tell a user mistake from a bug in our code.
Messages name the file, the position and the problem whenever there is one.
"""


class ScratchLMError(Exception):
    """Root of all errors raised by scratchlm on purpose."""


class ConfigError(ScratchLMError, ValueError):
    """An invalid model or training configuration (bad field, inconsistent sizes)."""


class InputError(ScratchLMError, ValueError):
    """Bad arguments to the Python API: wrong shapes, ids out of range, an all-zero loss mask."""


class DataError(ScratchLMError, ValueError):
    """A data file that cannot be used: missing, unreadable, malformed, empty or over a limit."""


class TokenizerError(ScratchLMError, ValueError):
    """A tokenizer that cannot be built, trained or rebuilt from its JSON description."""


class ModelFileError(ScratchLMError):
    """A model or checkpoint file that fails one of the load checks."""


class TrainingDivergedError(ScratchLMError):
    """Training stopped because the loss or the gradients blew up."""
