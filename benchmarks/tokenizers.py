"""Tokenizer benchmark: bundled corpus sizes, BPE training time and encoding speed.

Usage: python benchmarks/tokenizers.py [path/to/tinyshakespeare.txt]
The Shakespeare path defaults to $SCRATCHLM_SHAKESPEARE or ../shared/data/tinyshakespeare.txt
beside the repository; the BPE lines are skipped when it is missing.

The `bpe_long` lines train (vocab 4096) and encode texts without spaces, where a pre-token could
be the whole text: each runs in a fresh process so that `peak_mb` (the process's peak resident
memory, Python and the text included) belongs to that case alone.
"""

import os
import random
import resource
import string
import subprocess
import sys
import time
from pathlib import Path

from scratchlm.examples import load_examples
from scratchlm.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer, tokenizer_from_json

REPO = Path(__file__).resolve().parents[1]


def shakespeare_path() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    env = os.environ.get("SCRATCHLM_SHAKESPEARE")
    return Path(env) if env else REPO.parent / "shared/data/tinyshakespeare.txt"


def corpus_sizes() -> None:
    pretrain = load_examples(REPO / "data/pretrain.json")
    chat = load_examples(REPO / "data/chat.json")
    tok = WordTokenizer.build(pretrain + chat)
    for name, examples in (("pretrain", pretrain), ("chat", chat)):
        lengths = [len(tok.encode(text)) for text in examples]
        print(
            f"corpus={name} examples={len(examples)} word_tokens={sum(lengths)} "
            f"max_tokens_per_example={max(lengths)}"
        )
    print(f"word_vocab={tok.vocab_size} (pretrain+chat, specials included)")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bpe_speed(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    tok, seconds = timed(lambda: BPETokenizer.build([text], vocab_size=4096))
    print(
        f"bpe_train corpus_mb={len(text.encode()) / 1e6:.2f} vocab={tok.vocab_size} s={seconds:.2f}"
    )
    sample = text.encode()[:1_000_000].decode("utf-8", errors="ignore")
    mb = len(sample.encode()) / 1e6
    cold = tokenizer_from_json(tok.to_json())  # a fresh pre-token cache
    ids, seconds = timed(lambda: cold.encode(sample))
    print(f"bpe_encode mb={mb:.2f} tokens={len(ids)} s={seconds:.3f} mb_per_s={mb / seconds:.1f}")
    _, seconds = timed(lambda: cold.encode(sample))
    print(f"bpe_encode_warm_cache mb_per_s={mb / seconds:.1f}")
    _, seconds = timed(lambda: cold.decode(ids))
    print(f"bpe_decode mb_per_s={mb / seconds:.1f}")
    char = CharTokenizer.build([text])
    _, seconds = timed(lambda: char.encode(sample))
    print(f"char_encode vocab={char.vocab_size} mb_per_s={mb / seconds:.1f}")


def long_word(rng: random.Random) -> str:
    """One 100,000-letter word."""
    return "".join(rng.choices(string.ascii_lowercase, k=100_000))


def long_line(rng: random.Random) -> str:
    """A 2 MB line of letters (some multi-byte) and punctuation, without space or newline."""
    alphabet = string.ascii_letters + string.punctuation + "éßж東京😀"
    text = "".join(rng.choices(alphabet, k=2_000_000))
    return text.encode()[:2_000_000].decode(errors="ignore")  # drop a cut last character


LONG_CASES = {"word_100k": long_word, "line_2mb": long_line}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bpe_long_case(name: str) -> None:
    text = LONG_CASES[name](random.Random(0))
    mb = len(text.encode()) / 1e6
    tok, seconds = timed(lambda: BPETokenizer.build([text], vocab_size=4096))
    print(
        f"bpe_long_train case={name} mb={mb:.2f} vocab={tok.vocab_size} s={seconds:.2f} "
        f"peak_mb={peak_mb():.0f}"
    )
    ids, seconds = timed(lambda: tok.encode(text))
    assert tok.decode(ids) == text
    print(f"bpe_long_encode case={name} tokens={len(ids)} s={seconds:.2f} peak_mb={peak_mb():.0f}")


def bpe_long() -> None:
    for name in LONG_CASES:
        subprocess.run([sys.executable, __file__, "--long", name], check=True)


def main() -> None:
    if sys.argv[1:2] == ["--long"]:
        bpe_long_case(sys.argv[2])
        return
    corpus_sizes()
    bpe_long()
    path = shakespeare_path()
    if path.is_file():
        bpe_speed(path)
    else:
        print(f"bpe: skipped, {path} not found")


if __name__ == "__main__":
    main()
