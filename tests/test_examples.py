"""Loaders (every error names file and position), example batching and token corpora."""

import json
import logging
import random

import numpy as np
import pytest
from helpers import one_error_line, write
from models import word_model
from mutate import SEED, cases, data_seeds, dumps, edit_json, fresh_file, replay

from scratchlm.cli import main
from scratchlm.corpus import TokenCorpus, read_corpus
from scratchlm.errors import (
    DataError,
    InputError,
    ModelFileReadError,
    ModelFileWriteError,
    ScratchLMError,
)
from scratchlm.examples import ExampleBatcher, assistant_tokens, load_examples
from scratchlm.model import load_model
from scratchlm.modelfile import save_model
from scratchlm.tokenizers import build_tokenizer


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
    path = write(tmp_path / "a.json", json.dumps(["Hello there. </s>", "  No end mark  "]))
    assert load_examples(path) == ["Hello there. </s>", "No end mark </s>"]


def test_txt_examples_are_non_empty_lines(tmp_path):
    path = write(tmp_path / "a.txt", "one\n\n  \ntwo </s>\r\n")
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
    path = write(tmp_path / "a.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert load_examples(path) == [
        "Plain text. </s>",
        "User: How do mountains form? Assistant: Plates push the land up. "
        "User: Thanks! Assistant: You are welcome. </s>",
    ]


def test_utf8_bom_is_ignored(tmp_path):
    path = write(tmp_path / "a.json", b"\xef\xbb\xbf" + json.dumps(["x"]).encode())
    assert load_examples(path) == ["x </s>"]


def test_missing_file(tmp_path):
    data_error(str(tmp_path / "nope.json"), "no such file")
    data_error(str(tmp_path / "typo"), "no such file")


def test_directory(tmp_path):
    (tmp_path / "d.json").mkdir()
    data_error(str(tmp_path / "d.json"), "is a directory")


def test_empty_file(tmp_path):
    data_error(write(tmp_path / "e.json", ""), "empty")


def test_unsupported_extension(tmp_path):
    data_error(write(tmp_path / "a.csv", "x"), "unsupported file type '.csv'")


def test_invalid_utf8_names_byte_and_line(tmp_path):
    path = write(tmp_path / "bad.txt", b"good line\nsecond \xff line\n")
    data_error(path, "invalid UTF-8", "byte 17", "line 2")


def test_invalid_json_names_line_and_column(tmp_path):
    path = write(tmp_path / "bad.json", '[\n  "a",\n  "b"\n  "c"\n]')
    data_error(path, "invalid JSON", "line 4", "column 3")


def test_wrong_top_level_type(tmp_path):
    data_error(write(tmp_path / "obj.json", '{"a": 1}'), "expected a JSON array", "got object")


def test_empty_array(tmp_path):
    data_error(write(tmp_path / "empty.json", "[]"), "the array is empty")


def test_wrong_element_type_rejects_the_whole_file(tmp_path):
    path = write(tmp_path / "chat.json", '[\n"a </s>",\n"b </s>",\n"c </s>",\n42,\n"e </s>"\n]')
    message = data_error(path, "element 3 (line 5): expected a string, got int")
    assert message == f"{path}: element 3 (line 5): expected a string, got int"


def test_empty_example(tmp_path):
    data_error(write(tmp_path / "a.json", '["ok", " </s>"]'), "element 1", "empty")


def test_over_long_example_names_index_and_length(tmp_path):
    path = write(tmp_path / "long.json", json.dumps(["short", "x" * 10_001]))
    data_error(path, "element 1", "10,001 characters", "limit of 10,000")
    txt = write(tmp_path / "long.txt", "short\n" + "y" * 12_345 + "\n")
    data_error(txt, "line 2", "12,345 characters")


def test_file_too_large_is_checked_before_reading(tmp_path):
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.truncate(100 * 2**20 + 1)  # sparse: costs no disk space
    data_error(str(path), "104,857,601 bytes", "100 MiB limit")


def test_txt_with_only_blank_lines(tmp_path):
    data_error(write(tmp_path / "blank.txt", "\n  \n\n"), "no examples")


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
    path = write(tmp_path / "a.jsonl", '{"text": "fine"}\n\n' + line + "\n")
    data_error(path, "line 3: ", fragment)


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


# ------------------------------------------------------------------------------ bad data files, case by case


@pytest.mark.parametrize("depth", [1_000, 50_000])
@pytest.mark.parametrize("ext", [".json", ".jsonl"])
def test_json_nested_1000_levels_deep(tmp_path, ext, depth):
    nested = "[" * depth + "]" * depth
    content = f"[{nested}]" if ext == ".json" else f'{{"text": "ok"}}\n{{"text": {nested}}}\n'
    path = write(tmp_path / f"deep{ext}", content)
    with pytest.raises(DataError, match="nested too deeply") as info:
        load_examples(path)
    assert str(info.value).startswith(f"{path}: ")
    assert ("line 2" if ext == ".jsonl" else "line 1 column") in str(info.value)


@pytest.mark.parametrize("ext", [".json", ".jsonl"])
def test_integer_literal_over_4300_digits(tmp_path, ext):
    number = "7" * 5000
    content = f'["a", {number}]' if ext == ".json" else f'{{"text": {number}}}\n'
    path = write(tmp_path / f"big{ext}", content)
    with pytest.raises(DataError, match="an integer of over 4,300 digits") as info:
        load_examples(path)
    assert "column" in str(info.value) and str(path) in str(info.value)
    # A long float is a number Python reads: the usual type error follows
    path = write(tmp_path / "float.json", f'["a", 1.{number}]')
    with pytest.raises(DataError, match="expected a string, got float"):
        load_examples(path)


@pytest.mark.parametrize("role, got", [(["user"], "got array"), ({"a": 1}, "got object")])
def test_chat_role_that_is_a_list_or_object(tmp_path, role, got):
    record = {"messages": [{"role": role, "content": "hi"}]}
    path = write(tmp_path / "chat.jsonl", json.dumps(record) + "\n")
    with pytest.raises(DataError, match=f"line 1: message 0: role must be .* {got}"):
        load_examples(path)


def test_path_with_a_nul_byte(tmp_path):
    bad = str(tmp_path / "a\0b.json")
    for call, error in [
        (lambda: load_examples(bad), DataError),
        (lambda: list(read_corpus(bad)), DataError),
        (lambda: load_model(bad), ModelFileReadError),
        (lambda: save_model(bad, word_model()), ModelFileWriteError),
        (lambda: TokenCorpus.build(bad, build_tokenizer("char", ["ab"])), DataError),
    ]:
        with pytest.raises(error, match="NUL byte"):
            call()


@pytest.mark.parametrize(
    "name, content",
    [
        ("a.json", r'["fine", "broken \ud800 text"]'),
        ("a.jsonl", '{"text": "fine"}\n{"text": "a \\udfff b"}\n'),
        ("m.jsonl", '{"messages": [{"role": "user", "content": "q \\ud83d"}]}\n'),
        ("k.jsonl", '{"text": "fine", "\\udc00": 1}\n'),
    ],
)
def test_lone_surrogates_are_refused_at_load_time(tmp_path, name, content):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError, match="lone surrogate .*not Unicode") as info:
        load_examples(path)
    assert str(info.value).startswith(f"{path}: ")


def test_surrogate_pairs_and_escaped_backslashes_are_fine(tmp_path):
    path = write(tmp_path / "a.json", r'["smile \ud83d\ude00", "a \\ud800 is text"]')
    assert load_examples(path) == ["smile \U0001f600 </s>", "a \\ud800 is text </s>"]


def test_lone_surrogates_stop_training_before_it_starts(tmp_path, capsys):
    data = write(tmp_path / "p.json", r'["the cat sat </s>", "bad \udc80 </s>"]')
    out = tmp_path / "out" / "m.safetensors"
    assert main(["train", "--pretrain", str(data), "--output", str(out)]) == 2
    assert "lone surrogate" in one_error_line(capsys)
    assert not out.parent.exists()  # nothing trained, nothing written


# ------------------------------------------------------------------------------ fuzzing: thousands of damaged data files load or raise a ScratchLMError


def structured_data_seeds(rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    """Valid JSON of the wrong shapes: every field of every format with a random type."""
    out = []
    for k in range(n):
        name = ["a.json", "t.jsonl", "m.jsonl"][k % 3]
        if name == "a.json":
            doc = edit_json(["one", "two", "three"], rng)
            out.append((name, dumps(doc).encode()))
        else:
            record = {"text": "hi"} if name == "t.jsonl" else data_seed_chat()
            out.append((name, (dumps(edit_json(record, rng)) + "\n").encode()))
    return out


def data_seed_chat():
    return {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def check_examples(examples) -> None:
    assert isinstance(examples, list) and examples
    for text in examples:
        assert isinstance(text, str) and text.endswith("</s>")
        text.encode("utf-8")  # valid Unicode


N_DATA_MUTANTS = 2000
N_DATA_STRUCTURED = 400


def test_fuzz_data_files(tmp_path):
    rng = random.Random(SEED)
    mutants = list(cases(data_seeds(), N_DATA_MUTANTS, SEED))
    structured = [(N_DATA_MUTANTS + i, *c) for i, c in enumerate(structured_data_seeds(rng, 400))]
    outcomes = {"loaded": 0, "refused": 0}
    for k, name, data in mutants + structured:
        path = fresh_file(tmp_path, k, name, data)
        try:
            check_examples(load_examples(path))
            outcomes["loaded"] += 1
        except ScratchLMError as e:
            assert str(e).startswith(f"{path}: "), replay("data-file", k, data, e)
            outcomes["refused"] += 1
        except Exception as e:
            pytest.fail(replay("data-file", k, data, e))
    assert sum(outcomes.values()) >= 2_000
    assert outcomes["loaded"] > 100 and outcomes["refused"] > 100  # both paths are exercised
