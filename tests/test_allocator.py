"""`import scratchlm` makes glibc keep freed memory (allocator.py), for library callers too."""

import ctypes
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
import numpy as np
if sys.argv[1] == "import":
    import scratchlm

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
before = libc.mallinfo2().hblkhd
x = np.ones(2**23)  # 64 MiB
print(libc.mallinfo2().hblkhd - before)  # bytes of it that glibc mapped with mmap
"""


def mmapped_bytes(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="needs glibc 2.33 or later")
def test_import_keeps_large_blocks_off_mmap():
    assert mmapped_bytes("plain") >= 2**26  # glibc's default: a fresh mapping, page faults
    assert mmapped_bytes("import") == 0  # after import scratchlm: from the reusable heap


THREAD_PROBE = """
import resource, sys, threading
import numpy as np
if sys.argv[1] == "import":
    import scratchlm

faults = []

def work():  # as a shard thread of the trainer: large blocks, freed, then needed again
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        a, b = np.ones(5 * 2**20), np.ones(5 * 2**20)  # 40 MiB each: two heaps of the arena
        del a, b
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)

thread = threading.Thread(target=work)
thread.start()
thread.join()
print(*faults[1:])  # the first pass maps the pages; the later ones should find them
"""


@pytest.mark.skipif(not hasattr(__import__("resource"), "RUSAGE_THREAD"), reason="Linux only")
def test_a_thread_reuses_its_freed_blocks_after_import():
    def later_faults(mode):
        out = subprocess.run(
            [sys.executable, "-c", THREAD_PROBE, mode], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return [int(n) for n in out.stdout.split()]

    assert min(later_faults("plain")) > 100  # glibc unmaps a thread's empty heap: fresh pages
    assert max(later_faults("import")) == 0
