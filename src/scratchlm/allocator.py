"""Keep freed memory in the process instead of handing it back to the operating system.

A training step allocates and frees many temporaries of several megabytes (the (B, H, T, T)
attention arrays). By default glibc returns such blocks to the kernel on free, so the next step
touches fresh pages and pays a page fault per 4 KiB: measured here, a quarter of the step time of
the larger benchmark config. Telling glibc never to serve large blocks by mmap and never to trim its
heap (mallopt(3): M_MMAP_MAX = 0, M_TRIM_THRESHOLD = -1) makes it reuse those blocks. The price is that the process keeps its peak memory until it exits, which suits training.

Called by the command line and the benchmarks; it is a no-op where glibc is not the C library.
"""

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Returns True when the allocator settings were applied."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, -1))
