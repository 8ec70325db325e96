"""Keep freed memory in the process instead of handing it back to the operating system.

A training step allocates and frees many temporaries of several megabytes (the attention arrays,
the (B, T, V) logits). By default glibc returns such blocks to the kernel on free, so the next step
touches fresh pages and pays a page fault per 4 KiB: a large part of the step time of the larger
benchmark config (benchmarks/train_step.py). Telling glibc never to serve large blocks by mmap and never to trim its
heap (mallopt(3): M_MMAP_MAX = 0, M_TRIM_THRESHOLD = -1) makes it reuse those blocks.

The trainer's shard threads (parallel.py) allocate from arenas of their own, made of heaps of at
most 64 MiB, and glibc unmaps such a heap as soon as it is empty, whatever the trim threshold: each
shard of the larger config then paid thousands of page faults per update, and two threads
faulting at once slowed the update measurably (tests/test_allocator.py counts the faults). A top pad (M_TOP_PAD) of two heaps' size keeps every heap mapped
(glibc deletes one only when more than the pad would remain free); in the main heap it only
reserves address space, which costs nothing until it is touched. The price of all three settings
is that the process keeps its peak memory until it exits, which suits training.

`import scratchlm` applies it, so a library caller (a notebook calling `Model.loss_and_grads`) runs
as fast as the command line without knowing about it. The alternatives were worse: buffers reused
from step to step would tie arrays to objects, while a cache belongs to one call (docs/design.md
section 3), and a function that every caller has to remember leaves the default slow. A process
that must hand memory back can restore glibc's defaults with mallopt itself. Where glibc is not the
C library this is a no-op.
"""

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_TOP_PAD_BYTES = 128 * 2**20  # two of the 64 MiB heaps of a thread's arena


def keep_freed_memory() -> bool:
    """Returns True when the allocator settings were applied."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(
        mallopt(_M_MMAP_MAX, 0)
        and mallopt(_M_TRIM_THRESHOLD, -1)
        and mallopt(_M_TOP_PAD, _TOP_PAD_BYTES)
    )
