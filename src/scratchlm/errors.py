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


class TokenFileError(DataError):
    """A token file (a corpus tokenized once, corpus.py) that fails a check: damaged, stale, or made
    from another corpus or with another tokenizer. `problem` says what is wrong; the message adds
    the file and the fix (`TokenCorpus.build` rebuilds such a file by itself, with a warning)."""

    def __init__(self, path, problem: str):
        self.path, self.problem = path, problem
        super().__init__(
            f"{path}: {problem}; delete it and run again: it is rebuilt from the corpus"
        )


class TokenizerError(ScratchLMError, ValueError):
    """A tokenizer that cannot be built, trained or rebuilt from its JSON description."""


class ModelFileError(ScratchLMError):
    """A model or checkpoint file that fails one of the load checks."""


class TrainingDivergedError(ScratchLMError):
    """Training stopped because the loss or the gradients blew up."""


class RequestError(ScratchLMError, ValueError):
    """A request the server refuses (serve/): `status` is its HTTP status, `param` the
    request field at fault (or None) and `code` a short machine-readable reason (or None)."""

    def __init__(self, message: str, status: int = 400, param=None, code=None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


class ServerBusyError(ScratchLMError):
    """The server already holds as many requests as it may take; the client should retry later."""


# One subclass per model-file check, so tests and callers can tell which check failed; the message
# always names the file and the check as well.


class ModelFileReadError(ModelFileError):
    """The file is missing or cannot be read (a folder, a FIFO or a device, no permission,
    an I/O error)."""


class ModelFileFormatError(ModelFileError):
    """Not a scratchlm model file: an unknown extension, unparseable bytes, a truncated file,
    a missing or wrong `format` marker, or a required entry that is missing or of the wrong type."""


class ModelFileVersionError(ModelFileError):
    """The file's `format_version` is newer than this scratchlm can read."""


class ModelFileIntegrityError(ModelFileError):
    """The stored `sha256` (or `checkpoint_sha256`) does not match the file's content."""


class ModelFileConfigError(ModelFileError):
    """The stored config is not a valid `ModelConfig`."""


class ModelFileShapeError(ModelFileError):
    """A tensor is missing, unexpected, or has a shape other than the config implies."""


class ModelFileValueError(ModelFileError):
    """A tensor holds NaN or infinity."""


class ModelFileTokenizerError(ModelFileError):
    """The stored tokenizer description cannot be turned back into a tokenizer."""


class ModelFileWriteError(ModelFileError):
    """A model or checkpoint file could not be written (the previous file, if any, is intact)."""


class WriteError(ScratchLMError):
    """An output file other than a model (a token file, the metrics, the loss plot) could not be
    written: a full disk, no permission, a folder in the way. The previous file, if any, is
    intact."""


class PuzzleError(ScratchLMError, ValueError):
    """A Sudoku puzzle that cannot be used (reason/sudoku.py): the wrong number of cells, a symbol
    that is not a digit of the grid, two equal digits in one row, column or box, no solution, or
    more than one. `kind` says which ("size", "symbol", "contradiction", "no_solution",
    "several_solutions", or "read" for a file that cannot be read at all); the message names the
    source, the cell and the problem."""

    def __init__(self, message: str, kind: str = "read"):
        super().__init__(message)
        self.kind = kind
