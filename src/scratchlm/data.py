"""Reading training data and cutting it into batches (DESIGN.md section 4).

Two kinds of data:

- Example sets (`load_examples`, `ExampleBatcher`): a few thousand short texts such as the
  bundled `data/pretrain.json` and `data/chat.json`, read whole (at most 100 MiB a file, 10,000
  characters an example) and batched as right-padded examples. Accepted files: a JSON array of
  strings, `.txt` with one example per line, and `.jsonl` with `{"text": ...}` or
  `{"messages": [...]}` lines.
- Corpora (`read_corpus`, `TokenCorpus`): one long text of any size (Shakespeare), read in chunks,
  tokenized once into a memory-mapped token file and sampled in fixed-length windows.

Every problem with a file raises `DataError` naming the file, the position and the problem, and the
whole file is checked before anything is returned, so training never starts on a half-read file.
Not handled here: choosing or building the tokenizer (see `scratchlm.tokenizers`).
"""

import hashlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import DataError, InputError
from .tokenizers import Tokenizer

logger = logging.getLogger("scratchlm")

MAX_FILE_BYTES = 100 * 2**20
MAX_EXAMPLE_CHARS = 10_000
EOS_TEXT = "</s>"
CORPUS_CHUNK_BYTES = 2**20
SORT_WINDOW = 50  # batches' worth of examples sorted by length together (less padding)
ROLE_NAMES = {"user": "User", "assistant": "Assistant"}

# --------------------------------------------------------------------------- reading files


def _check_file(path: Path) -> os.stat_result:
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


def _decode(path: Path, data: bytes, byte_offset: int = 0, line_offset: int = 0) -> str:
    """UTF-8 text of `data` (a part of `path` starting at `byte_offset`), without a BOM."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = line_offset + data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path}: invalid UTF-8 at byte {byte_offset + e.start} (line {line}): {e.reason}"
        ) from None
    return text[1:] if byte_offset == 0 and text.startswith("\ufeff") else text


def _read_whole(path: Path) -> str:
    size = _check_file(path).st_size
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"{path}: the file is {size:,} bytes, over the {MAX_FILE_BYTES // 2**20} MiB limit "
            "for example sets (a plain-text corpus has no limit)"
        )
    try:
        return _decode(path, path.read_bytes())
    except OSError as e:
        raise DataError(f"{path}: cannot read the file: {e.strerror}") from None


def _type_name(value) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) for the non-blank lines; only "\\n" ends a line, as in editors."""
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line.rstrip("\r")


# --------------------------------------------------------------------------- example sets


class _BadRecord(Exception):
    """A problem inside one record; the caller adds the file and the position."""


def load_examples(path) -> list[str]:
    """All examples of a `.json`, `.jsonl` or `.txt` example set, each ending in " </s>"."""
    path = Path(path)
    _check_file(path)  # "no such file" says more than "unsupported file type" after a typo
    parsers = {".json": _parse_json, ".jsonl": _parse_jsonl, ".txt": _parse_txt}
    parse = parsers.get(path.suffix.lower())
    if parse is None:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; expected .json, .jsonl or .txt"
        )
    examples, locate = parse(path, _read_whole(path))
    if not examples:
        raise DataError(f"{path}: the file holds no examples")
    for i, example in enumerate(examples):
        problem = _example_problem(example)
        if problem:
            raise DataError(f"{path}: {locate(i)}: {problem}")
    return [_with_eos(example) for example in examples]


def _example_problem(example: str) -> str | None:
    if not example.strip() or example.strip() == EOS_TEXT:
        return "the example is empty"
    if len(example) > MAX_EXAMPLE_CHARS:
        return (
            f"the example is {len(example):,} characters, over the limit of {MAX_EXAMPLE_CHARS:,}"
        )
    return None


def _with_eos(example: str) -> str:
    example = example.strip()
    return example if example.endswith(EOS_TEXT) else f"{example} {EOS_TEXT}"


Parsed = tuple[list[str], Callable[[int], str]]  # the examples, and how to name example i


def _parse_json(path: Path, text: str) -> Parsed:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of strings, got {_type_name(data)}")
    if not data:
        raise DataError(f"{path}: the array is empty")

    def locate(i: int) -> str:
        return f"element {i} (line {_json_element_line(text, i)})"

    for i, item in enumerate(data):
        if not isinstance(item, str):
            raise DataError(f"{path}: {locate(i)}: expected a string, got {_type_name(item)}")
    return data, locate


def _json_element_line(text: str, index: int) -> int:
    """Line on which element `index` of the (valid) top-level JSON array starts."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    for _ in range(index + 1):
        while text[pos] in " \t\r\n,":
            pos += 1
        start = pos
        _, pos = decoder.raw_decode(text, pos)
    return text.count("\n", 0, start) + 1


def _parse_txt(path: Path, text: str) -> Parsed:
    numbered = list(_lines(text))
    return [line for _, line in numbered], lambda i: f"line {numbered[i][0]}"


def _parse_jsonl(path: Path, text: str) -> Parsed:
    numbers, examples = [], []
    for number, line in _lines(text):
        try:
            examples.append(_render_record(json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}: line {number}: invalid JSON at column {e.colno}: {e.msg}"
            ) from None
        except _BadRecord as e:
            raise DataError(f"{path}: line {number}: {e}") from None
        numbers.append(number)
    return examples, lambda i: f"line {numbers[i]}"


def _render_record(record) -> str:
    """One `.jsonl` record as example text; chats use the `User: q Assistant: a </s>` template."""
    if not isinstance(record, dict):
        raise _BadRecord(f"expected a JSON object, got {_type_name(record)}")
    if ("text" in record) == ("messages" in record):
        raise _BadRecord("expected exactly one of the keys 'text' and 'messages'")
    if "text" in record:
        if not isinstance(record["text"], str):
            raise _BadRecord(f"'text' must be a string, got {_type_name(record['text'])}")
        return record["text"]
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise _BadRecord("'messages' must be a non-empty array")
    turns = []
    for j, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _BadRecord(f"message {j}: expected an object, got {_type_name(message)}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLE_NAMES:
            raise _BadRecord(f"message {j}: role must be 'user' or 'assistant', got {role!r}")
        if not isinstance(content, str):
            raise _BadRecord(f"message {j}: 'content' must be a string, got {_type_name(content)}")
        turns.append(f"{ROLE_NAMES[role]}: {content.strip()}")
    return " ".join(turns) + f" {EOS_TEXT}"


# --------------------------------------------------------------------------- corpora


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
    _check_file(path)
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
            yield _decode(path, chunk, byte_offset, line_offset)
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


# --------------------------------------------------------------------------- batches


class Batch(NamedTuple):
    """Model inputs and next-token targets, both (B, T) int64, and the loss mask (B, T) float32
    that is 1 where a target counts and 0 on padding (or on a prompt, see `ExampleBatcher`)."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray


class ExampleBatcher:
    """Shuffled, right-padded batches of whole examples.

    `examples` are token-id lists that already end in the end-of-sequence id; an example of n ids
    gives inputs ids[:-1] and targets ids[1:]. Examples longer than `max_seq_len + 1` ids are cut
    to that length (one warning counts them). Each epoch is shuffled from (seed, epoch) alone, so
    runs repeat exactly; examples of similar length are put together to save padding.

    `loss_start` (optional, one int per example) is the first target position whose loss counts;
    earlier targets get mask 0. For chat examples use `assistant_loss_start` to train only on the
    assistant's words; None (the default) counts every real target.
    """

    def __init__(
        self,
        examples: Sequence[Sequence[int]],
        batch_size: int,
        max_seq_len: int,
        seed: int = 0,
        pad_id: int = 0,
        loss_start: Sequence[int] | None = None,
    ):
        for name, value in (("batch_size", batch_size), ("max_seq_len", max_seq_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if not examples:
            raise DataError("no examples to batch")
        self.batch_size, self.max_seq_len = batch_size, max_seq_len
        self.seed, self.pad_id = seed, pad_id
        full_lengths = np.array([len(ids) for ids in examples], dtype=np.int64)
        short = np.flatnonzero(full_lengths < 2)
        if short.size:
            i = int(short[0])
            raise DataError(f"example {i} has {full_lengths[i]} token(s); at least 2 are needed")
        self._loss_start = self._check_loss_start(loss_start, full_lengths)
        self._lengths = np.minimum(full_lengths, max_seq_len + 1)
        self._warn_truncated(full_lengths)
        self._flat = np.concatenate([np.asarray(ids[: max_seq_len + 1]) for ids in examples])
        self._flat = self._flat.astype(np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._lengths)[:-1]])

    @staticmethod
    def _check_loss_start(loss_start, full_lengths: np.ndarray) -> np.ndarray:
        if loss_start is None:
            return np.zeros(len(full_lengths), dtype=np.int64)
        starts = np.asarray(loss_start)
        if starts.shape != full_lengths.shape or not np.issubdtype(starts.dtype, np.integer):
            raise InputError(f"loss_start must hold one integer per example ({len(full_lengths)})")
        bad = np.flatnonzero((starts < 0) | (starts > full_lengths - 2))
        if bad.size:
            i = int(bad[0])
            raise InputError(
                f"loss_start[{i}] = {starts[i]} is outside 0..{full_lengths[i] - 2}, "
                f"the target positions of that example"
            )
        return starts.astype(np.int64)

    def _warn_truncated(self, full_lengths: np.ndarray) -> None:
        n_cut = int(np.count_nonzero(full_lengths > self._lengths))
        if n_cut:
            # After the cut an example has targets 0 .. length-2; a later loss_start leaves none.
            n_empty = int(np.count_nonzero(self._loss_start > self._lengths - 2))
            logger.warning(
                "%d of %d examples are longer than max_seq_len + 1 = %d tokens and were truncated"
                "%s",
                n_cut,
                len(full_lengths),
                self.max_seq_len + 1,
                f" ({n_empty} of them keep no counted target)" if n_empty else "",
            )

    def __len__(self) -> int:
        return -(-len(self._lengths) // self.batch_size)

    def batches(self, epoch: int) -> Iterator[Batch]:
        """The batches of one epoch; the same (seed, epoch) always gives the same batches."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self._lengths))
        window = SORT_WINDOW * self.batch_size
        for s in range(0, len(order), window):
            part = order[s : s + window]
            order[s : s + window] = part[np.argsort(self._lengths[part], kind="stable")]
        groups = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        for k in rng.permutation(len(groups)):
            yield self._batch(groups[k])

    def _batch(self, chosen: np.ndarray) -> Batch:
        lengths = self._lengths[chosen]
        cols = np.arange(lengths.max())  # token positions; T = longest - 1
        real = cols < lengths[:, None]
        positions = np.where(real, self._starts[chosen][:, None] + cols, 0)
        tokens = np.where(real, self._flat[positions], self.pad_id)
        has_target = real[:, 1:]  # input j is real iff its target j + 1 is
        inputs = np.where(has_target, tokens[:, :-1], self.pad_id)
        counted = has_target & (cols[:-1] >= self._loss_start[chosen][:, None])
        return Batch(inputs, np.ascontiguousarray(tokens[:, 1:]), counted.astype(np.float32))


def assistant_loss_start(tokenizer: Tokenizer, text: str, marker: str = "Assistant:") -> int:
    """The `loss_start` that counts only what follows the first `marker` in a chat example.

    Works for every tokenizer because the text before "Assistant:" tokenizes the same alone as
    inside the whole example (the marker ends in punctuation followed by a space). A text without
    the marker counts whole (0).
    """
    k = text.find(marker)
    if k < 0:
        return 0
    return len(tokenizer.encode(text[: k + len(marker)])) - 1


# --------------------------------------------------------------------------- token corpora


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
        name = f"{corpus.name}.{_cache_key(corpus, _check_file(corpus), tokenizer)}.tokens.bin"
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
    """Tokenize `corpus` chunk by chunk into `target`, atomically: a temporary file in the same
    folder is renamed only once the whole corpus was read, so a failure leaves no token file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise DataError(f"{target.parent}: cannot write the token file: {e.strerror}") from None
    dtype = token_dtype(tokenizer.vocab_size)
    try:
        n_tokens = 0
        with os.fdopen(fd, "wb") as f:
            for chunk in read_corpus(corpus):
                ids = np.asarray(tokenizer.encode(chunk), dtype=dtype)
                ids.tofile(f)
                n_tokens += len(ids)
            f.flush()
            os.fsync(f.fileno())
        if n_tokens == 0:
            raise DataError(f"{corpus}: the corpus gives no tokens")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("tokenized %s: %d tokens into %s", corpus, n_tokens, target)
