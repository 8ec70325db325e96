"""Token-file benchmark: what verifying a token file costs next to making it.

Usage: python benchmarks/token_file.py [megabytes, default 8]
Writes a synthetic corpus of that size into a temporary folder and prints one line per step:
hashing the corpus bytes (done on every `TokenCorpus.build`, to name the file), tokenizing it once
(char tokenizer, the corpus default), and opening the existing file again (header, size, sha256 of
the tokens and the id range are checked every time).
"""

import hashlib
import sys
import tempfile
import time
from pathlib import Path

from scratchlm.corpus import TokenCorpus, _file_sha256
from scratchlm.tokenizers import build_tokenizer

LINE = "ROMEO: But soft, what light through yonder window breaks? It is the east.\n"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus.txt"
        corpus.write_text(LINE * int(megabytes * 2**20 / len(LINE)))
        size_mb = corpus.stat().st_size / 2**20
        tok = build_tokenizer("char", [LINE])
        _, hash_s = timed(lambda: _file_sha256(corpus))
        tc, build_s = timed(lambda: TokenCorpus.build(corpus, tok))
        n = tc.n_train_tokens + tc.n_val_tokens
        _, open_s = timed(lambda: TokenCorpus.build(corpus, tok))
        _, verify_s = timed(lambda: TokenCorpus(tc.path, tok.vocab_size))
        _, sha_s = timed(lambda: hashlib.sha256(tc.train).hexdigest())
    print(f"corpus_mb={size_mb:.1f} tokens={n:,}")
    print(f"step=hash_corpus seconds={hash_s:.3f} mb_per_s={size_mb / hash_s:.0f}")
    print(f"step=first_build seconds={build_s:.3f} (hash + tokenize + write)")
    print(f"step=reuse_build seconds={open_s:.3f} (hash + open and verify)")
    print(f"step=open_verify seconds={verify_s:.3f} (header, size, sha256, id range)")
    print(f"step=sha256_tokens seconds={sha_s:.3f}")
    print(f"verify_share_of_first_build={verify_s / build_s:.1%}")


if __name__ == "__main__":
    main()
