"""Keep freed numpy buffers in the process heap instead of handing them back to the OS.

glibc serves an allocation above its mmap threshold (128 KB, raised on the fly only up
to the largest block freed so far) with a fresh mapping, and returns the heap's free top
once it passes the trim threshold. The window folds and the encoder allocate and free
many arrays of 0.1-30 MB, so each one was faulted in page by page again: half of one
fold block's time (6.4 ms, 3.0 ms with the thresholds). Fixed thresholds keep those pages
mapped for reuse (the 5,000-entity month-end backfill ran about 13 % faster, for 0.1-0.3
GB more peak RSS).
Arrays above 32 MB (the largest threshold glibc accepts) still get their own mapping.
Other C libraries have their own policies: nothing is changed there.

numpy also asks the kernel for transparent huge pages on every array of 4 MB or more
(madvise). Where the kernel then compacts memory at fault time to find them (THP defrag
"madvise", a common default), first touching a fresh array costs several times more:
filling 640 MB took 0.9-1.5 s with the advice and 0.23 s without on a virtual machine
that never got a huge page. So the advice is turned off, unless NUMPY_MADVISE_HUGEPAGE
says otherwise. Output bytes never depend on any of this.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib
import os

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 1024 * 1024 * 1024  # free heap kept before it is given back
TOP_PAD = 64 * 1024 * 1024  # extra heap asked for at each growth: fewer brk calls


HUGEPAGE_ENV = "NUMPY_MADVISE_HUGEPAGE"  # numpy's own switch, read when it is imported


@functools.cache
def tune_allocator() -> bool:
    """Set glibc's malloc thresholds once per process; False where they do not apply.
    Also stops numpy advising huge pages (see the module's docstring)."""
    no_huge_page_advice()
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): its own policy stays
        return False
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD),
    )
    return all(mallopt(param, value) == 1 for param, value in settings)


def no_huge_page_advice() -> bool:
    """Stop numpy's huge-page advice; False where it is left as is (the user set
    NUMPY_MADVISE_HUGEPAGE, or this numpy has no switch)."""
    if HUGEPAGE_ENV in os.environ:
        return False
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, numpy 1
        try:
            switch = importlib.import_module(module)._set_madvise_hugepage
        except (ImportError, AttributeError):
            continue
        switch(False)
        return True
    return False
