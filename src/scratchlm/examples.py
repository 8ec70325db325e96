"""Example sets: a few thousand short texts such as the bundled pre-training facts and chat pairs,
read whole and batched as right-padded examples.

Accepted files (at most 100 MiB each, 10,000 characters an example): a JSON array of strings, `.txt`
with one example per line, and `.jsonl` with `{"text": ...}` or `{"messages": [...]}` lines (chats
rendered with the chat template of chat_format.py). Every example ends in " </s>".

Every problem with a file raises `DataError` naming the file, the position and the problem, and the
whole file is checked before anything is returned, so training never starts on a half-read file:
the path is a regular file, the bytes are UTF-8, the JSON parses (however deep or long, see
`fileio.parse_json`), every field has its type, and every text is Unicode that can be written out
again (no lone surrogates: a model trained on one could not be saved).
Not handled here: long corpora (corpus.py), choosing or building the tokenizer (tokenizers/).
"""

import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import chat_format
from .checks import is_int
from .errors import DataError, InputError
from .fileio import check_file, check_not_empty, decode_utf8, parse_json
from .tokenizers import Tokenizer

logger = logging.getLogger("scratchlm")

MAX_FILE_BYTES = 100 * 2**20
MAX_EXAMPLE_CHARS = 10_000
EOS_TEXT = chat_format.EOS
SORT_WINDOW = 50  # batches' worth of examples sorted by length together (less padding)

# --------------------------------------------------------------------------- reading files


def _read_whole(path: Path) -> str:
    st = check_file(path)
    check_not_empty(path, st)
    size = st.st_size
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"{path}: the file is {size:,} bytes, over the {MAX_FILE_BYTES // 2**20} MiB limit "
            "for example sets (a plain-text corpus has no limit)"
        )
    try:
        return decode_utf8(path, path.read_bytes())
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
    check_file(path)  # "no such file" says more than "unsupported file type" after a typo
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
        data = parse_json(text)
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
            examples.append(_render_record(parse_json(line)))
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
        if not isinstance(role, str) or role not in chat_format.ROLES:
            got = repr(role) if isinstance(role, str) else _type_name(role)
            raise _BadRecord(f"message {j}: role must be 'user' or 'assistant', got {got}")
        if not isinstance(content, str):
            raise _BadRecord(f"message {j}: 'content' must be a string, got {_type_name(content)}")
        turns.append((role, content))
    return chat_format.render(turns) + f" {EOS_TEXT}"


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

    `counted` (optional): per example, one boolean per token id, true where predicting that token
    counts towards the loss (token 0 is never predicted); the others get mask 0. For chat examples
    `assistant_tokens` marks the assistant's words; None (the default) counts every real target.
    """

    def __init__(
        self,
        examples: Sequence[Sequence[int]],
        batch_size: int,
        max_seq_len: int,
        seed: int = 0,
        pad_id: int = 0,
        counted: Sequence[Sequence[bool]] | None = None,
    ):
        for name, value in (("batch_size", batch_size), ("max_seq_len", max_seq_len)):
            if not is_int(value) or value < 1:
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
        counted = self._check_counted(counted, full_lengths)
        self._lengths = np.minimum(full_lengths, max_seq_len + 1)
        cut = max_seq_len + 1
        self._flat = np.concatenate([np.asarray(ids[:cut]) for ids in examples]).astype(np.int64)
        self._counted = np.concatenate([np.asarray(c[:cut], dtype=bool) for c in counted])
        self._starts = np.concatenate([[0], np.cumsum(self._lengths)[:-1]])
        self._warn_truncated(full_lengths)

    @staticmethod
    def _check_counted(counted, full_lengths: np.ndarray) -> list:
        if counted is None:
            return [np.ones(n, dtype=bool) for n in full_lengths]
        if len(counted) != len(full_lengths):
            raise InputError(
                f"counted must hold one list of flags per example ({len(full_lengths)})"
            )
        for i, (flags, n) in enumerate(zip(counted, full_lengths, strict=True)):
            if len(flags) != n or not np.any(np.asarray(flags, dtype=bool)[1:]):
                raise InputError(
                    f"counted[{i}] must have one flag per token ({n}) and count at least one "
                    "token after the first"
                )
        return counted

    def _warn_truncated(self, full_lengths: np.ndarray) -> None:
        n_cut = int(np.count_nonzero(full_lengths > self._lengths))
        if n_cut:
            # After the cut an example may keep no token whose prediction counts.
            ends = self._starts + self._lengths
            n_empty = sum(
                not self._counted[s + 1 : e].any() for s, e in zip(self._starts, ends, strict=True)
            )
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
        counted = has_target & self._counted[positions[:, 1:]]
        return Batch(inputs, np.ascontiguousarray(tokens[:, 1:]), counted.astype(np.float32))


def text_batcher(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    batch_size: int,
    max_seq_len: int,
    seed: int = 0,
    answers_only: bool = False,
) -> ExampleBatcher:
    """An `ExampleBatcher` of example texts; answers_only counts the loss on the assistant's words
    only (`assistant_tokens`), as chat training may."""
    counted = [assistant_tokens(tokenizer, t) for t in texts] if answers_only else None
    return ExampleBatcher(
        [tokenizer.encode(t) for t in texts],
        batch_size,
        max_seq_len,
        seed=seed,
        pad_id=tokenizer.pad_id,
        counted=counted,
    )


def assistant_tokens(tokenizer: Tokenizer, text: str) -> list[bool]:
    """One flag per token of the chat example `text`: true on the assistant's words, each answer
    from after its "Assistant:" up to the next " User:" and the final `</s>`. Training on these
    alone teaches neither the user's questions nor a made-up next question at the end of an answer.

    Works for every tokenizer because a text cut just after "Assistant:" or just before " User:"
    tokenizes the same alone as inside the whole example (each marker starts a new token). A text
    without "Assistant:" counts whole.
    """
    n = len(tokenizer.encode(text))
    if chat_format.ASSISTANT not in text:
        return [True] * n
    flags = [False] * n
    for marker in re.finditer(re.escape(chat_format.ASSISTANT), text):
        start = len(tokenizer.encode(text[: marker.end()]))
        user = text.find(f" {chat_format.USER}", marker.end())
        end = n if user < 0 else len(tokenizer.encode(text[:user]))
        flags[start:end] = [True] * (end - start)
    return flags
