"""A seeded mutator of files, for the fuzz tests of every loader (test_examples.py, test_modelfile.py,
test_token_corpus.py, test_cli.py): every run tries the same cases, and a case that breaks a
contract fails with its seed, index and the start of its bytes, so it can be replayed.

Mutations: byte flips, insertions of bytes and of known troublemakers (deep nesting, huge integers,
lone surrogates, NUL, invalid UTF-8), deletions, duplications, truncations; and for structured
files edits of the parsed document (`edit_json`).
"""

import json
import random
from pathlib import Path

SEED = 14  # any seed must pass

TROUBLE = [  # byte strings that broke, or could break, a parser somewhere
    b"[" * 1200,
    b'{"a":' * 1100,
    b"9" * 5000,
    b"-" + b"1" * 4400,
    b"1e99999",
    b"NaN",
    b"-Infinity",
    b"\\ud800",
    b'"\\udfff"',
    b"\\ud83d\\ude00",
    b"\\\\ud800",
    b"\\u0000",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",  # a surrogate encoded in UTF-8: invalid
    b"\xef\xbb\xbf",  # a BOM, in the middle
    b"\r\n",
    b"\n\n",
    b"</s>",
    b'"role": ["user"]',
    b'"role": {"a": 1}',
    b'"content": null',
    b'"messages": []',
    b'"text": 5',
    b"null",
    b"true",
    b"{}",
    b"[]",
    b'"',
    b",",
    b":",
    b"x" * 11000,
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits of `data`."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(data) + 1)
        kind = rng.randrange(7)
        if kind == 0 and data:  # flip one bit
            i = min(i, len(data) - 1)
            data[i] ^= 1 << rng.randrange(8)
        elif kind == 1:  # insert random bytes
            data[i:i] = rng.randbytes(rng.randint(1, 8))
        elif kind == 2:  # insert a troublemaker
            data[i:i] = rng.choice(TROUBLE)
        elif kind == 3:  # delete a range
            del data[i : i + rng.randint(1, 64)]
        elif kind == 4:  # duplicate a range
            data[i:i] = data[i : i + rng.randint(1, 64)]
        elif kind == 5:  # truncate
            del data[i:]
        else:  # overwrite a range with one repeated byte
            n = rng.randint(1, 32)
            data[i : i + n] = bytes([rng.randrange(256)]) * n
    return bytes(data)


def random_json(rng: random.Random, depth: int = 0):
    """A random JSON value, mostly small, of every type."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 1, 2**31, 10**20, rng.randint(-5, 50)])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, float("nan"), float("inf"), 3.25])
    if kind in (4, 5):
        return rng.choice(["", "user", "assistant", "hi </s>", "x" * 50, "é\U0001f600", "\udc80"])
    if kind in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["text", "messages", "role", "content", "type", "tokens", "merges", "pattern"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def dumps(value) -> str:
    """JSON text of `value`, even with a lone surrogate in it (ensure_ascii escapes it)."""
    return json.dumps(value)


def edit_json(value, rng: random.Random):
    """`value` (parsed JSON) with one random path replaced, deleted or extended."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        choice = rng.randrange(4)
        if choice == 0:
            del value[key]
        elif choice == 1:
            value[key] = random_json(rng)
        else:
            value[key] = edit_json(value[key], rng)
        return value
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        value[i] = edit_json(value[i], rng) if rng.random() < 0.6 else random_json(rng)
        return value
    return random_json(rng)


def cases(seed_files: list[tuple[str, bytes]], n: int, seed: int):
    """(index, name, bytes): `n` mutants of the seed files, round robin."""
    rng = random.Random(seed)
    for k in range(n):
        name, data = seed_files[k % len(seed_files)]
        yield k, name, mutate(data, rng)


def fresh_file(folder: Path, k: int, name: str, data: bytes) -> Path:
    """Case k's bytes in a new file: rewriting one file in place costs milliseconds a time on
    ext4, which flushes a file truncated and written again when it is closed."""
    path = folder / f"{k}-{name}"
    path.write_bytes(data)
    return path


def replay(what: str, k: int, data: bytes, error: BaseException) -> str:
    return (
        f"{what} case {k} (seed {SEED}) broke the contract with {type(error).__name__}: {error}\n"
        f"first bytes: {data[:200]!r}"
    )


def data_seeds() -> list[tuple[str, bytes]]:
    texts = ["The cat sat. </s>", "Héllo, wörld \U0001f600", 'a\\b "quoted"', "line\twith tab"]
    chats = [
        {
            "messages": [
                {"role": "user", "content": "How do mountains form?"},
                {"role": "assistant", "content": "Plates push the land up."},
            ]
        },
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]},
    ]
    return [
        ("a.json", json.dumps(texts, indent=1).encode()),
        ("a.json", json.dumps(texts, ensure_ascii=False).encode()),
        ("t.jsonl", "\n".join(json.dumps({"text": t}) for t in texts).encode()),
        ("m.jsonl", "\n".join(json.dumps(c, ensure_ascii=False) for c in chats).encode()),
        ("a.txt", "\n".join(texts).encode()),
        ("a.txt", b"\xef\xbb\xbfone line\r\nanother line\n\n"),
    ]
