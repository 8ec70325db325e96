"""Opening, parsing and writing files safely.

Reading. `check_file(path)` is the one check of every path before it is opened (data files, token
files, model files, config files): it exists, is a regular file (a folder, a FIFO, a device or a
socket is refused at once instead of blocking or reading forever) and the path has no NUL byte.
`decode_utf8` turns bytes into text with an error that names the byte and line.
`parse_json` parses every JSON text a user can hand us (example sets, model files, token-file
headers): what Python's parser raises on hostile input (nesting about 1,000 levels deep, an integer
of over 4,300 digits) becomes a `json.JSONDecodeError` with the position, like any syntax error, and
so does a string holding a lone surrogate (a `"\ud800"` escape): that is not Unicode, and a text
that holds one could never be written out again (a checkpoint of a model trained on it would fail).

Writing, so that a crash, a kill or a full disk never leaves a half-written file.
`atomic_write(path)` is the one way scratchlm replaces a file it produces (models, checkpoints,
token files, loss plots): the bytes go to a temporary file in the same folder (a rename is atomic
only within one file system), are forced to disk, and only then renamed over `path`; syncing the
folder makes the rename itself survive a crash. On any failure the temporary file is removed and
`path` keeps its old content. A temporary file left by a killed process is removed by the next write
to the same path. `append_text` adds to a file (the metrics log). Both turn every OS error into the
`ScratchLMError` subclass the caller names, with the file in the message. Not handled: locking
against two processes writing the same path at once.
"""

import contextlib
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .checks import lone_surrogate
from .errors import DataError, ScratchLMError


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


@contextlib.contextmanager
def atomic_write(path, error: type[ScratchLMError] = ScratchLMError) -> Iterator[BinaryIO]:
    """`with atomic_write(path) as f: f.write(...)` replaces `path` only if the block completes.
    OS errors become `error` naming the file."""
    path = Path(path)
    with os_errors(path, error, "write the file"):
        _remove_leftovers(path)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os_errors(path, error, "write the file"):
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _new_file_mode())
            os.replace(tmp, path)
            _sync_folder(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def append_text(path, text: str, error: type[ScratchLMError] = ScratchLMError) -> None:
    """Append `text` to `path` (created if missing); OS errors become `error` naming the file."""
    with os_errors(path, error, "write the file"), open(path, "a", encoding="utf-8") as f:
        f.write(text)


@contextlib.contextmanager
def os_errors(path, error: type[ScratchLMError], doing: str) -> Iterator[None]:
    """Turn an OS error in the block (no space left, no permission, not a folder, a NUL byte in
    the path) into `error`: "<path>: cannot <doing>: <reason>"."""
    try:
        yield
    except OSError as e:
        raise error(f"{path}: cannot {doing}: {e.strerror or e}") from e
    except ValueError as e:  # what os functions raise for a path with a NUL byte
        if "embedded null" not in str(e):
            raise
        raise error(f"{str(path)!r}: cannot {doing}: the path contains a NUL byte") from None


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


_FILE_TYPES = {  # what a path that is not a regular file is, in words
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def check_file(path, error: type[ScratchLMError] = DataError) -> os.stat_result:
    """The stat of `path`, a regular file; else `error` saying what is wrong.

    Called before every open: reading a FIFO or a device would block or never end, and only the
    file type tells them apart from a file before the first read.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except ValueError:  # os.stat's answer to a NUL byte
        raise error(f"{str(path)!r}: the path contains a NUL byte") from None
    except OSError as e:
        raise error(f"{path}: cannot read the file: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = _FILE_TYPES.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise error(f"{path}: is {kind}, not a file")
    return st


def check_not_empty(path, st: os.stat_result) -> None:
    """A data file or corpus with no bytes at all says so (rather than "no examples")."""
    if st.st_size == 0:
        raise DataError(f"{path}: the file is empty")


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


# ----------------------------------------------------------------------------- JSON

# A JSON string literal (escapes included), and an escape of a UTF-16 surrogate inside one.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# An integer (no fraction, no exponent) over Python's default limit of 4,300 digits.
_LONG_INTEGER = re.compile(r"-?\d{4301,}(?![.eE\d])")


def parse_json(text: str):
    """The value of the JSON `text`, or `json.JSONDecodeError` (which names line and column) for
    a syntax error, nesting too deep for Python's parser, an integer too long to convert, or a
    string holding a lone surrogate (see the module docstring)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError(
            "nested too deeply (scratchlm reads fewer than 1,000 levels)", text, _deepest(text)
        ) from None
    except json.JSONDecodeError:
        raise
    except ValueError:  # int() refuses integers of over 4,300 digits
        limit = sys.get_int_max_str_digits()
        raise json.JSONDecodeError(
            f"an integer of over {limit:,} digits", text, _long_number(text)
        ) from None
    if _SURROGATE_ESCAPE.search(text) and not _is_unicode(value):
        _refuse_lone_surrogates(text)
    return value


def _is_unicode(value) -> bool:
    """Whether every string in `value` (keys too) is valid Unicode: one pass of the C encoder,
    fast even for files full of escaped emoji (valid surrogate pairs)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    except RecursionError:  # as deep as the parser could go: let the string scan decide
        return False
    return True


def _outside_strings(text: str, pattern: re.Pattern) -> Iterator[re.Match]:
    """Matches of `pattern` in `text` that are not inside a JSON string."""
    for m in re.finditer(f"{_JSON_STRING.pattern}|{pattern.pattern}", text, re.DOTALL):
        if not m.group().startswith('"'):
            yield m


def _deepest(text: str) -> int:
    """Position of the first bracket at the greatest nesting depth (for the error message)."""
    depth, best, where = 0, -1, 0
    for m in _outside_strings(text, re.compile(r"[\[\]{}]")):
        depth += 1 if m.group() in "[{" else -1
        if depth > best:
            best, where = depth, m.start()
    return where


def _long_number(text: str) -> int:
    return next((m.start() for m in _outside_strings(text, _LONG_INTEGER)), 0)


def _refuse_lone_surrogates(text: str) -> None:
    """Find the string with the lone surrogate. Only strings with a surrogate escape can hold one
    (a valid pair decodes to one character); each such string is decoded alone."""
    for m in _JSON_STRING.finditer(text):
        if not _SURROGATE_ESCAPE.search(m.group()):
            continue
        string = json.loads(m.group())
        i = lone_surrogate(string)
        if i is not None:
            raise json.JSONDecodeError(
                f"the string holds a lone surrogate (\\u{ord(string[i]):04x}), which is not "
                "Unicode text",
                text,
                m.start(),
            )
