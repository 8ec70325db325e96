"""Loaders (every error names file and position), example batching and token corpora."""

import functools
import json
import logging
import os

import numpy as np
import pytest

from scratchlm import corpus as data
from scratchlm.corpus import TokenCorpus, read_corpus
from scratchlm.errors import DataError, InputError, ScratchLMError
from scratchlm.examples import ExampleBatcher, assistant_tokens, load_examples
from scratchlm.tokenizers import build_tokenizer


def write(tmp_path, name, content) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def data_error(path, *fragments) -> str:
    """Load `path`, expect a DataError naming the file and every fragment; return the message."""
    with pytest.raises(DataError) as info:
        load_examples(path)
    assert isinstance(info.value, ScratchLMError)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message
    return message


# --------------------------------------------------------------------------- loading


def test_json_examples_get_eos_appended(tmp_path):
    path = write(tmp_path, "a.json", json.dumps(["Hello there. </s>", "  No end mark  "]))
    assert load_examples(path) == ["Hello there. </s>", "No end mark </s>"]


def test_txt_examples_are_non_empty_lines(tmp_path):
    path = write(tmp_path, "a.txt", "one\n\n  \ntwo </s>\r\n")
    assert load_examples(path) == ["one </s>", "two </s>"]


def test_jsonl_text_and_messages(tmp_path):
    lines = [
        {"text": "Plain text."},
        {
            "messages": [
                {"role": "user", "content": "How do mountains form?"},
                {"role": "assistant", "content": "Plates push the land up."},
                {"role": "user", "content": "Thanks!"},
                {"role": "assistant", "content": "You are welcome."},
            ]
        },
    ]
    path = write(tmp_path, "a.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert load_examples(path) == [
        "Plain text. </s>",
        "User: How do mountains form? Assistant: Plates push the land up. "
        "User: Thanks! Assistant: You are welcome. </s>",
    ]


def test_utf8_bom_is_ignored(tmp_path):
    path = write(tmp_path, "a.json", b"\xef\xbb\xbf" + json.dumps(["x"]).encode())
    assert load_examples(path) == ["x </s>"]


def test_missing_file(tmp_path):
    data_error(str(tmp_path / "nope.json"), "no such file")
    data_error(str(tmp_path / "typo"), "no such file")


def test_directory(tmp_path):
    (tmp_path / "d.json").mkdir()
    data_error(str(tmp_path / "d.json"), "is a directory")


def test_empty_file(tmp_path):
    data_error(write(tmp_path, "e.json", ""), "empty")


def test_unsupported_extension(tmp_path):
    data_error(write(tmp_path, "a.csv", "x"), "unsupported file type '.csv'")


def test_invalid_utf8_names_byte_and_line(tmp_path):
    path = write(tmp_path, "bad.txt", b"good line\nsecond \xff line\n")
    data_error(path, "invalid UTF-8", "byte 17", "line 2")


def test_invalid_json_names_line_and_column(tmp_path):
    path = write(tmp_path, "bad.json", '[\n  "a",\n  "b"\n  "c"\n]')
    data_error(path, "invalid JSON", "line 4", "column 3")


def test_wrong_top_level_type(tmp_path):
    data_error(write(tmp_path, "obj.json", '{"a": 1}'), "expected a JSON array", "got object")


def test_empty_array(tmp_path):
    data_error(write(tmp_path, "empty.json", "[]"), "the array is empty")


def test_wrong_element_type_rejects_the_whole_file(tmp_path):
    path = write(tmp_path, "chat.json", '[\n"a </s>",\n"b </s>",\n"c </s>",\n42,\n"e </s>"\n]')
    message = data_error(path, "element 3 (line 5): expected a string, got int")
    assert message == f"{path}: element 3 (line 5): expected a string, got int"


def test_empty_example(tmp_path):
    data_error(write(tmp_path, "a.json", '["ok", " </s>"]'), "element 1", "empty")


def test_over_long_example_names_index_and_length(tmp_path):
    path = write(tmp_path, "long.json", json.dumps(["short", "x" * 10_001]))
    data_error(path, "element 1", "10,001 characters", "limit of 10,000")
    txt = write(tmp_path, "long.txt", "short\n" + "y" * 12_345 + "\n")
    data_error(txt, "line 2", "12,345 characters")


def test_file_too_large_is_checked_before_reading(tmp_path):
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.truncate(100 * 2**20 + 1)  # sparse: costs no disk space
    data_error(str(path), "104,857,601 bytes", "100 MiB limit")


def test_txt_with_only_blank_lines(tmp_path):
    data_error(write(tmp_path, "blank.txt", "\n  \n\n"), "no examples")


@pytest.mark.parametrize(
    "line, fragment",
    [
        ('{"text": "a"', "invalid JSON at column"),
        ("[1, 2]", "expected a JSON object, got array"),
        ('{"text": 5}', "'text' must be a string, got int"),
        ('{"text": "a", "messages": []}', "exactly one of the keys"),
        ('{"other": 1}', "exactly one of the keys"),
        ('{"messages": []}', "non-empty array"),
        ('{"messages": [{"role": "system", "content": "x"}]}', "message 0: role must be"),
        ('{"messages": [{"role": "user", "content": null}]}', "'content' must be a string"),
        ('{"messages": ["hi"]}', "message 0: expected an object, got string"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, line, fragment):
    path = write(tmp_path, "a.jsonl", '{"text": "fine"}\n\n' + line + "\n")
    data_error(path, "line 3: ", fragment)


# --------------------------------------------------------------------------- corpora reading


def test_read_corpus_chunks_join_back_and_cut_between_lines(tmp_path):
    text = "First line here.\nSecond: more words\n\n  indented\nlast é line\n" * 200
    path = write(tmp_path, "c.txt", text)
    chunks = list(read_corpus(path, chunk_bytes=100))
    assert "".join(chunks) == text
    assert len(chunks) > 20
    assert all(c.endswith("\n") for c in chunks)


def test_read_corpus_forced_cut_keeps_characters_whole(tmp_path):
    text = "é" * 1000  # one long line: chunks must be cut inside it
    chunks = list(read_corpus(write(tmp_path, "c.txt", text), chunk_bytes=64))
    assert "".join(chunks) == text and len(chunks) > 1


@pytest.mark.parametrize("kind", ["char", "bpe", "word"])
def test_chunked_tokenization_equals_whole(tmp_path, kind):
    text = "Hello, World!\nIt's  a test </s>\nNew line: 42 words\n\nAnd more.\n" * 50
    tok = build_tokenizer(kind, [text], vocab_size=300 if kind == "bpe" else None)
    chunks = read_corpus(write(tmp_path, "c.txt", text), chunk_bytes=50)
    assert [i for c in chunks for i in tok.encode(c)] == tok.encode(text)


def test_read_corpus_bad_utf8_late_in_file(tmp_path):
    path = write(tmp_path, "c.txt", b"abc\ndef\n" * 100 + b"x\x80y\n")
    with pytest.raises(DataError, match=r"c\.txt: invalid UTF-8 at byte 801 \(line 201\)"):
        list(read_corpus(path, chunk_bytes=64))


def test_read_corpus_missing(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        list(read_corpus(tmp_path / "none.txt"))


# --------------------------------------------------------------------------- batching


def make_examples(n=37, seed=1):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(3, 50, size=rng.integers(2, 12))) + [2] for _ in range(n)]


def test_batches_cover_every_example_once_with_exact_masks():
    examples = make_examples()
    batcher = ExampleBatcher(examples, batch_size=8, max_seq_len=20, seed=3)
    batches = list(batcher.batches(0))
    assert len(batches) == len(batcher) == 5
    seen = []
    for inputs, targets, mask in batches:
        assert inputs.dtype == targets.dtype == np.int64 and mask.dtype == np.float32
        lengths = mask.sum(axis=1).astype(int)
        assert inputs.shape[1] == lengths.max()  # T = longest in this batch
        for row in range(len(inputs)):
            n = lengths[row]
            assert (mask[row, :n] == 1).all() and (mask[row, n:] == 0).all()
            assert (inputs[row, n:] == 0).all() and (targets[row, n:] == 0).all()
            assert (inputs[row, 1:n] == targets[row, : n - 1]).all()
            seen.append([*inputs[row, :n].tolist(), int(targets[row, n - 1])])
    assert sorted(seen) == sorted(examples)


def test_same_seed_same_batches_other_epochs_differ():
    examples = make_examples(200)

    def first_inputs(seed, epoch):
        batcher = ExampleBatcher(examples, 16, 20, seed=seed)
        return [b.inputs.tolist() for b in batcher.batches(epoch)]

    assert first_inputs(0, 0) == first_inputs(0, 0)
    assert first_inputs(0, 0) != first_inputs(0, 1)
    assert first_inputs(0, 0) != first_inputs(1, 0)


def test_length_grouping_limits_padding():
    examples = make_examples(400)
    batcher = ExampleBatcher(examples, 8, 20)
    padding = sum((1 - b.mask).sum() for b in batcher.batches(0))
    real = sum(len(e) - 1 for e in examples)
    assert padding < 0.1 * real


def test_truncation_warns_once_with_the_count(caplog):
    examples = [[5] * 30 + [2], [5, 2], [6] * 12 + [2]]
    with caplog.at_level(logging.WARNING, logger="scratchlm"):
        batcher = ExampleBatcher(examples, batch_size=4, max_seq_len=10)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 of 3 examples" in warnings[0].getMessage()
    (batch,) = batcher.batches(0)
    assert batch.inputs.shape == (3, 10)


def test_pad_id_and_bad_examples():
    (batch,) = ExampleBatcher([[4, 5, 2], [4, 2]], 2, 10, pad_id=7).batches(0)
    assert 7 in batch.inputs
    with pytest.raises(DataError, match="example 1 has 1 token"):
        ExampleBatcher([[4, 2], [2]], 2, 10)
    with pytest.raises(DataError):
        ExampleBatcher([], 2, 10)
    with pytest.raises(InputError):
        ExampleBatcher([[4, 2]], 0, 10)


def test_counted_flags_choose_the_targets():
    examples = [[10, 11, 12, 13, 2], [20, 21, 2]]
    flags = [[0, 0, 0, 1, 1], [1, 1, 1]]
    (batch,) = ExampleBatcher(examples, 2, 10, counted=flags).batches(0)
    rows = {int(r[0]): m.tolist() for r, m in zip(batch.inputs, batch.mask, strict=True)}
    assert rows[10] == [0, 0, 1, 1]
    assert rows[20] == [1, 1, 0, 0]
    with pytest.raises(InputError, match="counted\\[0\\] must have one flag per token"):
        ExampleBatcher(examples, 2, 10, counted=[[1, 1], [1, 1, 1]])
    with pytest.raises(InputError, match="count at least one token after the first"):
        ExampleBatcher(examples, 2, 10, counted=[[1, 0, 0, 0, 0], [1, 1, 1]])


def test_truncation_keeps_the_flags_of_the_kept_tokens(caplog):
    examples = [[10, 11, 12, 13, 14, 2], [20, 21, 2]]
    flags = [[0, 0, 0, 0, 1, 1], [0, 1, 1]]
    (batch,) = ExampleBatcher(examples, 2, 3, counted=flags).batches(0)
    assert "1 of them keep no counted target" in caplog.text
    rows = {int(r[0]): m.tolist() for r, m in zip(batch.inputs, batch.mask, strict=True)}
    assert rows[10] == [0, 0, 0] and rows[20] == [1, 1, 0]


CONVERSATION = (
    "User: How do mountains form? Assistant: Plates push land upward. "
    "User: Why? Assistant: The crust moves slowly. </s>"
)


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_assistant_tokens_are_the_answers_and_the_end(kind):
    tok = build_tokenizer(kind, [CONVERSATION * 5], vocab_size=300 if kind == "bpe" else None)
    ids = tok.encode(CONVERSATION)
    flags = assistant_tokens(tok, CONVERSATION)
    (batch,) = ExampleBatcher([ids], 1, len(ids), counted=[flags]).batches(0)
    counted = batch.targets[0][batch.mask[0] == 1].tolist()
    # no question, and no "User:" after the first answer: the answers, then the end
    answers = " ".join(tok.decode(counted).split())
    assert answers == "Plates push land upward. The crust moves slowly."
    assert counted[-1] == tok.eos_id
    assert assistant_tokens(tok, "no marker here") == [True] * len(tok.encode("no marker here"))


# --------------------------------------------------------------------------- token corpora

CORPUS = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind.\n" * 300


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path, build_tokenizer("char", [CORPUS])


def test_corpus_windows_are_offset_by_one(corpus):
    path, tok = corpus
    tc = TokenCorpus.build(path, tok)
    assert tc.dtype == np.uint16
    batch = tc.sample(6, 32, np.random.default_rng(0))
    assert batch.inputs.shape == batch.targets.shape == batch.mask.shape == (6, 32)
    assert batch.inputs.dtype == np.int64 and (batch.mask == 1).all()
    assert (batch.inputs[:, 1:] == batch.targets[:, :-1]).all()
    assert tok.decode(batch.inputs[0]) in CORPUS


def test_corpus_split_is_the_last_tenth(corpus):
    path, tok = corpus
    tc = TokenCorpus.build(path, tok)
    all_ids = tok.encode(CORPUS)
    n_val = int(len(all_ids) * 0.1)
    assert (tc.n_train_tokens, tc.n_val_tokens) == (len(all_ids) - n_val, n_val)
    assert list(tc.val) == all_ids[-n_val:]
    batch = tc.sample(4, 16, np.random.default_rng(1), split="val")
    assert tok.decode(batch.inputs[0]) in tok.decode(all_ids[-n_val:])
    with pytest.raises(DataError, match="fewer than seq_len"):
        tc.sample(1, n_val, np.random.default_rng(0), split="val")


def test_corpus_cache_is_reused_then_rebuilt_when_the_corpus_changes(corpus):
    path, tok = corpus
    first = TokenCorpus.build(path, tok)
    assert first.path.parent == path.parent and first.path.name.endswith(".tokens.bin")
    mtime = os.stat(first.path).st_mtime_ns
    again = TokenCorpus.build(path, tok)
    assert again.path == first.path and os.stat(again.path).st_mtime_ns == mtime
    path.write_text(CORPUS + "A new line.\n", encoding="utf-8")
    changed = TokenCorpus.build(path, tok)
    assert changed.path != first.path
    assert changed.n_train_tokens + changed.n_val_tokens == len(
        tok.encode(CORPUS + "A new line.\n")
    )


def test_corpus_in_a_read_only_folder_caches_elsewhere(tmp_path, monkeypatch):
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    folder.chmod(0o555)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        tok = build_tokenizer("char", [CORPUS])
        tc = TokenCorpus.build(path, tok)
        assert tc.path.parent == tmp_path / "cache" / "scratchlm"
        assert TokenCorpus.build(path, tok).path == tc.path
        explicit = TokenCorpus.build(path, tok, cache_dir=tmp_path / "mine")
        assert explicit.path.parent == tmp_path / "mine"
        assert sorted(p.name for p in folder.iterdir()) == ["corpus.txt"]
    finally:
        folder.chmod(0o755)


def test_failed_tokenization_leaves_no_token_file(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "read_corpus", functools.partial(read_corpus, chunk_bytes=64))
    path = tmp_path / "c.txt"
    path.write_bytes(CORPUS.encode() + b"\xff\n")
    with pytest.raises(DataError, match="invalid UTF-8"):
        TokenCorpus.build(path, build_tokenizer("char", [CORPUS]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_bpe_corpus_matches_whole_text_encoding(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "read_corpus", functools.partial(read_corpus, chunk_bytes=256))
    path = tmp_path / "c.txt"
    path.write_text(CORPUS, encoding="utf-8")
    tok = build_tokenizer("bpe", [CORPUS], vocab_size=320)
    tc = TokenCorpus.build(path, tok, val_fraction=0.0)
    assert tc.n_val_tokens == 0
    assert list(tc.train) == tok.encode(CORPUS)
