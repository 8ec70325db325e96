"""Token corpora: one long text of any size (Tiny Shakespeare, your own book), read in chunks,
tokenized once into a memory-mapped token file and sampled in fixed-length windows (the nanoGPT way).

Token files verify themselves, because a damaged one would otherwise train on wrong tokens without a
word. A file starts with a header of `HEADER_BYTES` bytes, JSON padded with spaces:

    {"format": "scratchlm-tokens", "version": 1, "dtype": "<u2", "n_tokens": 1003854,
     "tokenizer_sha256": "...", "corpus_sha256": "...", "tokens_sha256": "..."}

then the `n_tokens` ids, little-endian. Opening one checks the header, the file size, the sha256 of
the tokens and that every id is below the vocabulary size; `TokenCorpus.build` also checks that it
was made from these corpus bytes with this tokenizer. The file's name comes from the same two
digests, so an edited corpus gets a new file even with the same size and modification time. A
damaged, stale or foreign file is rebuilt with a warning; a path that cannot be replaced (a folder
in the way) is an error naming the fix.

Every problem with the corpus raises `DataError` naming the file, the position and the problem.
Not handled here: short example sets (examples.py), choosing or building the tokenizer, removing
the token files of older versions of a corpus (they are left for the user to delete).
"""

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import DataError, InputError, TokenFileError, WriteError
from .examples import Batch
from .fileio import (
    atomic_write,
    check_file,
    check_not_empty,
    decode_utf8,
    os_errors,
    parse_json,
)
from .modelfile import canon
from .tokenizers import Tokenizer

logger = logging.getLogger("scratchlm")

CORPUS_CHUNK_BYTES = 2**20


def read_corpus(path, chunk_bytes: int = CORPUS_CHUNK_BYTES, digest=None) -> Iterator[str]:
    """The text of a plain-text corpus of any size, in chunks of about `chunk_bytes` bytes.

    Chunks end after a newline that sits between two visible ASCII characters, where no token of
    any of our tokenizers can span, so tokenizing chunk by chunk gives the same ids as tokenizing
    the whole text. Only a text with no such newline for 4 * `chunk_bytes` bytes is cut elsewhere
    (after another newline, else between two characters), which can change a token or two there.
    A `DataError` (bad UTF-8, say) can come after earlier chunks were yielded: callers that store
    the result must treat it as void then. `digest` (a hashlib object) is fed every byte read.
    """
    path = Path(path)
    check_not_empty(path, check_file(path))
    with os_errors(path, DataError, "read the file"), path.open("rb") as f:
        yield from _chunks(path, f, chunk_bytes, digest)


def _chunks(path: Path, f, chunk_bytes: int, digest) -> Iterator[str]:
    pending, byte_offset, line_offset = b"", 0, 0
    while True:
        block = f.read(chunk_bytes)
        if digest is not None:
            digest.update(block)
        data = pending + block
        cut = len(data) if not block else _cut_point(data, force=len(data) >= 4 * chunk_bytes)
        if cut:
            chunk, pending = data[:cut], data[cut:]
            yield decode_utf8(path, chunk, byte_offset, line_offset)
            byte_offset += len(chunk)
            line_offset += chunk.count(b"\n")
        else:
            pending = data
        if not block:
            return


def _is_visible_ascii(byte: int) -> bool:
    return 0x21 <= byte <= 0x7E


def _cut_point(data: bytes, force: bool) -> int:
    """Length of the next chunk of `data`, or 0 to read more first (see `read_corpus`)."""
    end = len(data) - 1  # the byte after a newline must be present
    while (i := data.rfind(b"\n", 1, end)) > 0:
        if _is_visible_ascii(data[i - 1]) and _is_visible_ascii(data[i + 1]):
            return i + 1
        end = i
    if not force:
        return 0
    newline = data.rfind(b"\n")
    if newline >= 0:
        return newline + 1
    # The last byte that starts a UTF-8 character (continuation bytes are 0b10xxxxxx).
    start = len(data) - 1
    while start > 0 and data[start] & 0xC0 == 0x80:
        start -= 1
    return start or len(data)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scratchlm"


TOKEN_FILE_FORMAT, TOKEN_FILE_VERSION = "scratchlm-tokens", 1
HEADER_BYTES = 512  # the tokens start here: a multiple of every id size, so the memmap is aligned


class TokenCorpus:
    """A corpus tokenized once into a memory-mapped token file, sampled in random windows.

    The last `val_fraction` of the tokens is the validation split (as in nanoGPT), so the split is
    the same on every run. Token files (module docstring) are named `<corpus>.<key>.tokens.bin`,
    `key` a hash of the corpus bytes and the tokenizer, so an up-to-date file is reused and a
    changed corpus or tokenizer gets a new one.
    """

    def __init__(self, token_file, vocab_size: int, val_fraction: float = 0.1, expect=None):
        """Open a token file made by `build`, after every check of the module docstring; a
        `TokenFileError` names the file, the problem and the fix. `expect`: header fields the file
        must have (`build` passes the digests of its corpus and tokenizer)."""
        if not 0.0 <= val_fraction < 1.0:
            raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.path = Path(token_file)
        self.dtype = token_dtype(vocab_size)
        self.header, tokens = _verified_tokens(self.path, self.dtype, vocab_size, expect or {})
        n_val = int(len(tokens) * val_fraction)
        self.train, self.val = tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val :]

    @classmethod
    def build(
        cls, corpus_path, tokenizer: Tokenizer, cache_dir=None, val_fraction: float = 0.1
    ) -> "TokenCorpus":
        """Tokenize `corpus_path` (or reuse its token file). The token file goes into `cache_dir`
        if given, else next to the corpus, else (read-only folder) into ~/.cache/scratchlm. A
        token file that fails a check is rebuilt, with a warning."""
        corpus = Path(corpus_path)
        check_file(corpus)
        identity = {
            "tokenizer_sha256": hashlib.sha256(canon(tokenizer.to_json())).hexdigest(),
            "corpus_sha256": _file_sha256(corpus),
        }
        name = f"{corpus.name}.{hashlib.sha256(canon(identity)).hexdigest()[:16]}.tokens.bin"
        folders = [Path(cache_dir)] if cache_dir else [corpus.parent, default_cache_dir()]
        for folder in folders:
            if os.path.lexists(folder / name):
                try:
                    tokens = cls(folder / name, tokenizer.vocab_size, val_fraction, identity)
                except TokenFileError as e:
                    logger.warning("%s: %s; rebuilding it", e.path, e.problem)
                    continue
                logger.info("reusing token file %s", folder / name)
                return tokens
        folder = folders[0] if cache_dir or _writable(corpus.parent) else folders[1]
        _write_tokens(corpus, tokenizer, folder / name, identity)
        return cls(folder / name, tokenizer.vocab_size, val_fraction, identity)

    @property
    def n_train_tokens(self) -> int:
        return len(self.train)

    @property
    def n_val_tokens(self) -> int:
        return len(self.val)

    def sample(
        self, batch_size: int, seq_len: int, rng: np.random.Generator, split: str = "train"
    ) -> Batch:
        """`batch_size` random windows: inputs data[i:i+T], targets data[i+1:i+T+1]."""
        if split not in ("train", "val"):
            raise InputError(f"split must be 'train' or 'val', got {split!r}")
        data = self.train if split == "train" else self.val
        if len(data) < seq_len + 1:
            raise DataError(
                f"{self.path}: the {split} split has {len(data):,} tokens, "
                f"fewer than seq_len + 1 = {seq_len + 1}"
            )
        starts = rng.integers(0, len(data) - seq_len, size=batch_size)
        windows = data[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)
        mask = np.ones((batch_size, seq_len), dtype=np.float32)
        return Batch(windows[:, :-1], windows[:, 1:], mask)


def token_dtype(vocab_size: int) -> np.dtype:
    """The id type of a token file: little-endian, so a file means the same on every machine."""
    return np.dtype("<u2" if vocab_size <= 2**16 - 1 else "<u4")


def _file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks: far cheaper than tokenizing them."""
    h = hashlib.sha256()
    with os_errors(path, DataError, "read the file"), path.open("rb") as f:
        while block := f.read(CORPUS_CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def _writable(folder: Path) -> bool:
    # The mode bits matter even to root: a folder marked read-only (a shared data folder) is left
    # alone although root could write into it.
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def _write_tokens(corpus: Path, tokenizer: Tokenizer, target: Path, identity: dict) -> None:
    """Tokenize `corpus` chunk by chunk into `target`, atomically: a failure leaves no token file.
    The header goes in last (it holds the count and the checksum), over a blank placeholder."""
    if os.path.lexists(target) and not target.is_file():
        raise WriteError(
            f"{target}: is in the way of the token file (not a regular file); remove it and run "
            "again"
        )
    with os_errors(target.parent, WriteError, "create the folder"):
        target.parent.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tokenizer.vocab_size)
    read, tokens, n_tokens = hashlib.sha256(), hashlib.sha256(), 0
    with atomic_write(target, WriteError) as f:
        f.write(b" " * HEADER_BYTES)
        for chunk in read_corpus(corpus, digest=read):
            ids = np.asarray(tokenizer.encode(chunk), dtype=dtype)
            f.write(ids.tobytes())
            tokens.update(ids)
            n_tokens += len(ids)
        if n_tokens == 0:
            raise DataError(f"{corpus}: the corpus gives no tokens")
        if read.hexdigest() != identity["corpus_sha256"]:
            raise DataError(f"{corpus}: the file changed while it was being tokenized; run again")
        header = {
            "format": TOKEN_FILE_FORMAT,
            "version": TOKEN_FILE_VERSION,
            "dtype": dtype.str,
            "n_tokens": n_tokens,
            **identity,
            "tokens_sha256": tokens.hexdigest(),
        }
        f.seek(0)
        f.write(json.dumps(header).encode().ljust(HEADER_BYTES))
    logger.info("tokenized %s: %d tokens into %s", corpus, n_tokens, target)


def _verified_tokens(path: Path, dtype: np.dtype, vocab_size: int, expect: dict):
    """(header, tokens as a read-only memmap) of a token file that passes every check; else a
    `TokenFileError` saying which check failed."""
    try:
        size = check_file(path).st_size
    except DataError as e:  # missing, or not a regular file
        raise TokenFileError(path, str(e).removeprefix(f"{path}: ")) from None
    with os_errors(path, DataError, "read the file"), path.open("rb") as f:
        header = _parse_header(path, f.read(HEADER_BYTES))
    if header["dtype"] != dtype.str:
        raise TokenFileError(
            path,
            f"it holds {header['dtype']} ids, a vocabulary of {vocab_size:,} needs {dtype.str}",
        )
    n = header["n_tokens"]
    if size != HEADER_BYTES + n * dtype.itemsize:
        raise TokenFileError(
            path,
            f"it is {size:,} bytes, its header says {HEADER_BYTES + n * dtype.itemsize:,} "
            f"({n:,} tokens): the file is truncated or damaged",
        )
    for key, value in expect.items():
        if header.get(key) != value:
            raise TokenFileError(path, "it was made from another corpus or another tokenizer")
    with os_errors(path, DataError, "read the file"):
        tokens = np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(n,))
    if hashlib.sha256(tokens).hexdigest() != header["tokens_sha256"]:
        raise TokenFileError(path, "the tokens do not match their checksum: the file is damaged")
    top = int(tokens.max())
    if top >= vocab_size:
        where = int(np.argmax(tokens >= vocab_size))
        raise TokenFileError(
            path,
            f"the token at position {where:,} is id {top:,}, out of range for vocab_size "
            f"{vocab_size:,}: the file was made with another tokenizer",
        )
    return header, tokens


_HEX_DIGEST = frozenset("0123456789abcdef")


def _parse_header(path: Path, head: bytes) -> dict:
    """The header of a token file, every field checked; else a `TokenFileError`."""
    try:
        header = parse_json(head.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != TOKEN_FILE_FORMAT:
        raise TokenFileError(path, "not a scratchlm token file (no valid header)")
    if header.get("version") != TOKEN_FILE_VERSION:
        raise TokenFileError(path, f"token file version {header.get('version')!r} is not ours")
    n = header.get("n_tokens")
    fields_ok = (
        header.get("dtype") in ("<u2", "<u4")
        and isinstance(n, int)
        and not isinstance(n, bool)
        and n >= 1
        and all(
            isinstance(header.get(key), str)
            and len(header[key]) == 64
            and set(header[key]) <= _HEX_DIGEST
            for key in ("tokenizer_sha256", "corpus_sha256", "tokens_sha256")
        )
    )
    if not fields_ok:
        raise TokenFileError(path, "the header has a missing or invalid field")
    return header
