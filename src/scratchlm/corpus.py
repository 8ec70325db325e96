"""Token corpora: one long text of any size (Tiny Shakespeare, your own book), read in chunks,
tokenized once into a memory-mapped token file and sampled in fixed-length windows (the nanoGPT way).

Every problem with the corpus raises `DataError` naming the file, the position and the problem.
Not handled here: short example sets (examples.py), choosing or building the tokenizer.
"""

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import DataError, InputError
from .examples import Batch
from .fileio import atomic_write, check_file, decode_utf8
from .tokenizers import Tokenizer

logger = logging.getLogger("scratchlm")

CORPUS_CHUNK_BYTES = 2**20


def read_corpus(path, chunk_bytes: int = CORPUS_CHUNK_BYTES) -> Iterator[str]:
    """The text of a plain-text corpus of any size, in chunks of about `chunk_bytes` bytes.

    Chunks end after a newline that sits between two visible ASCII characters, where no token of
    any of our tokenizers can span, so tokenizing chunk by chunk gives the same ids as tokenizing
    the whole text. Only a text with no such newline for 4 * `chunk_bytes` bytes is cut elsewhere
    (after another newline, else between two characters), which can change a token or two there.
    A `DataError` (bad UTF-8, say) can come after earlier chunks were yielded: callers that store
    the result must treat it as void then.
    """
    path = Path(path)
    check_file(path)
    try:
        with path.open("rb") as f:
            yield from _chunks(path, f, chunk_bytes)
    except OSError as e:
        raise DataError(f"{path}: cannot read the file: {e.strerror}") from None


def _chunks(path: Path, f, chunk_bytes: int) -> Iterator[str]:
    pending, byte_offset, line_offset = b"", 0, 0
    while True:
        block = f.read(chunk_bytes)
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


class TokenCorpus:
    """A corpus tokenized once into a memory-mapped token file, sampled in random windows.

    The last `val_fraction` of the tokens is the validation split (as in nanoGPT), so the split is
    the same on every run. Token files are named `<corpus>.<hash>.tokens.bin` after a hash of the
    corpus path, size and modification time and the tokenizer, so an up-to-date file is reused and
    a changed corpus or tokenizer gets a new one (old files are left for the user to delete).
    """

    def __init__(self, token_file, vocab_size: int, val_fraction: float = 0.1):
        """Open an existing token file (use `build` to make one)."""
        if not 0.0 <= val_fraction < 1.0:
            raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.path = Path(token_file)
        self.dtype = token_dtype(vocab_size)
        tokens = np.memmap(self.path, dtype=self.dtype, mode="r")
        n_val = int(len(tokens) * val_fraction)
        self.train, self.val = tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val :]

    @classmethod
    def build(
        cls, corpus_path, tokenizer: Tokenizer, cache_dir=None, val_fraction: float = 0.1
    ) -> "TokenCorpus":
        """Tokenize `corpus_path` (or reuse its token file). The token file goes into `cache_dir`
        if given, else next to the corpus, else (read-only folder) into ~/.cache/scratchlm."""
        corpus = Path(corpus_path)
        name = f"{corpus.name}.{_cache_key(corpus, check_file(corpus), tokenizer)}.tokens.bin"
        folders = [Path(cache_dir)] if cache_dir else [corpus.parent, default_cache_dir()]
        for folder in folders:
            if (folder / name).is_file():
                logger.info("reusing token file %s", folder / name)
                return cls(folder / name, tokenizer.vocab_size, val_fraction)
        folder = folders[0] if cache_dir or _writable(corpus.parent) else folders[1]
        _write_tokens(corpus, tokenizer, folder / name)
        return cls(folder / name, tokenizer.vocab_size, val_fraction)

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


def token_dtype(vocab_size: int) -> type:
    return np.uint16 if vocab_size <= 2**16 - 1 else np.uint32


def _cache_key(corpus: Path, st: os.stat_result, tokenizer: Tokenizer) -> str:
    identity = {
        "path": str(corpus.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "tokenizer": tokenizer.to_json(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _writable(folder: Path) -> bool:
    # The mode bits matter even to root: a folder marked read-only (a shared data folder) is left
    # alone although root could write into it.
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def _write_tokens(corpus: Path, tokenizer: Tokenizer, target: Path) -> None:
    """Tokenize `corpus` chunk by chunk into `target`, atomically: a failure leaves no token file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{target.parent}: cannot write the token file: {e.strerror}") from None
    dtype = token_dtype(tokenizer.vocab_size)
    n_tokens = 0
    with atomic_write(target, DataError) as f:
        for chunk in read_corpus(corpus):
            ids = np.asarray(tokenizer.encode(chunk), dtype=dtype)
            ids.tofile(f)
            n_tokens += len(ids)
        if n_tokens == 0:
            raise DataError(f"{corpus}: the corpus gives no tokens")
    logger.info("tokenized %s: %d tokens into %s", corpus, n_tokens, target)
