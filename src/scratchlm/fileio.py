"""Opening and writing files safely.

`check_file(path)` is the one check of a data file before it is read: it exists, is not a folder, is
not empty. `decode_utf8` turns bytes into text with an error that names the byte and line.

Writing files so that a crash, a kill or a full disk never leaves a half-written one.

`atomic_write(path)` is the one way scratchlm replaces a file it produces (models, checkpoints,
token files): the bytes go to a temporary file in the same folder (a rename is atomic only within
one file system), are forced to disk, and only then renamed over `path`; syncing the folder makes
the rename itself survive a crash. On any failure the temporary file is removed and `path` keeps its
old content. A temporary file left by a killed process is removed by the next write to the same
path. Not handled: locking against two processes writing the same path at once.
"""

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import DataError, ScratchLMError


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


@contextlib.contextmanager
def atomic_write(path, error: type[ScratchLMError] = ScratchLMError) -> Iterator[BinaryIO]:
    """`with atomic_write(path) as f: f.write(...)` replaces `path` only if the block completes.
    OS errors become `error` naming the file."""
    path = Path(path)
    try:
        _remove_leftovers(path)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise error(f"{path}: cannot write the file: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
        _sync_folder(path.parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise error(f"{path}: cannot write the file: {e.strerror or e}") from e
        raise


def _remove_leftovers(path: Path) -> None:
    """Temporary files of earlier writes to `path` that were killed before they could clean up."""
    if not path.parent.is_dir():
        return
    for leftover in path.parent.glob(f"{_temp_prefix(path)}*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _new_file_mode() -> int:
    # mkstemp makes the file private to its owner; a saved file should get the permissions of any
    # new file, which only the process umask can tell (reading it means setting it, then back).
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _sync_folder(folder: Path) -> None:
    if os.name != "posix":  # Windows cannot open a folder to sync it
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- reading


def check_file(path: Path) -> os.stat_result:
    """The file's stat, or a `DataError` if it is missing, a directory or empty."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the file: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{path}: is a directory, not a file")
    if st.st_size == 0:
        raise DataError(f"{path}: the file is empty")
    return st


def decode_utf8(path: Path, data: bytes, byte_offset: int = 0, line_offset: int = 0) -> str:
    """UTF-8 text of `data` (a part of `path` starting at `byte_offset`), without a BOM."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = line_offset + data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path}: invalid UTF-8 at byte {byte_offset + e.start} (line {line}): {e.reason}"
        ) from None
    return text[1:] if byte_offset == 0 and text.startswith("\ufeff") else text
