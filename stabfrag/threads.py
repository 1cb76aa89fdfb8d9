"""The process's one pool of worker threads, for work that releases the GIL (numpy
kernels, BLAS products, Parquet encoding and fsync).

Made on first use, not at import: a process that never computes starts no thread. Its
tasks never wait on other tasks of the pool, so one pool serves every stage.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

WORKERS = max(1, min(4, os.cpu_count() or 1))


@functools.cache
def pool() -> ThreadPoolExecutor:
    """The shared pool of WORKERS threads."""
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="stabfrag")
