"""Row-stable linear algebra: the same row gives the same bytes whatever the batch.

BLAS picks different kernels for different matrix shapes (a single row goes through
another path than a large block), so `a @ b` for one row can differ in the last bit
from the same row inside a large batch. Every product here is taken in blocks of one
fixed shape, zero-padded, so a state's vector does not depend on what else was built
with it (build for one date == backfill over many).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from stabfrag.threads import WORKERS, pool

BLOCK = 1024


def matmul_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b in float64, computed in fixed-shape row blocks."""
    a = np.asarray(a)  # each block is cast to float64 as it is copied in: no copy of all of a
    b = np.ascontiguousarray(b, dtype=np.float64)
    n = a.shape[0]
    block = np.empty((BLOCK, a.shape[1]), dtype=np.float64)
    res = np.empty((BLOCK, b.shape[1]), dtype=np.float64)
    if n <= BLOCK:  # one block (the joint step's, the encoder's): its result is the answer
        _product(block, a, b, res)
        return res[:n]
    out = np.empty((n, b.shape[1]), dtype=np.float64)
    for lo in range(0, n, BLOCK):
        hi = min(lo + BLOCK, n)
        _product(block, a[lo:hi], b, res)
        out[lo:hi] = res[: hi - lo]
    return out


def _product(block: np.ndarray, rows: np.ndarray, b: np.ndarray, res: np.ndarray) -> None:
    """res = rows @ b, taken as the product of the zero-padded BLOCK-row `block`."""
    block[: len(rows)] = rows
    block[len(rows) :] = 0.0
    np.matmul(block, b, out=res)


def normalise(v: np.ndarray, *, inplace: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalise rows; return (unit rows, mask of rows whose norm was usable).

    `inplace` scales `v` itself (a temporary the caller owns): the same values, without
    a second array of its size.
    """
    norm = np.sqrt(np.einsum("ij,ij->i", v, v))
    ok = norm > 1e-12
    # One division for every row (no boolean gathers of the whole matrix); a row with no
    # usable norm becomes zeros.
    scale = np.divide(1.0, norm, out=np.zeros_like(norm), where=ok)
    if inplace:
        v *= scale[:, None]
        return v, ok
    return v * scale[:, None], ok


def project_unit(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """normalise(matmul_rows(a, b)) as float32, a block of rows at a time: the same bytes
    without (n, d) float64 temporaries of the whole batch."""
    n = a.shape[0]
    out = np.empty((n, b.shape[1]), dtype=np.float32)
    ok = np.empty(n, dtype=bool)

    def rows(first: int, last: int) -> None:
        for lo in range(first, last, BLOCK):  # blocks of BLOCK rows: matmul_rows' own shape
            hi = min(lo + BLOCK, last)
            unit, good = normalise(matmul_rows(a[lo:hi], b), inplace=True)
            out[lo:hi] = unit
            ok[lo:hi] = good

    by_row_spans(n, rows)  # each span writes only its own rows
    return out, ok


# Rows each thread of `by_row_spans` takes at a time: a few blocks, so both threads stay busy
# to the end without a task per block.
SPAN_ROWS = 8 * BLOCK


def by_row_spans(n: int, work: Callable[[int, int], None]) -> None:
    """Call work(lo, hi) over [0, n) in spans of at most SPAN_ROWS rows, on every core.

    Rows are independent and every product keeps its fixed block shape, so the bytes are
    those of one pass. Products of this size gain nothing from BLAS's own threads, which
    would only contend with these, so BLAS runs single-threaded meanwhile; where its
    thread count cannot be set, the spans run one after another.
    """
    # Fewer rows than a span per core (a build's few thousand states) are shared out all
    # the same, in whole blocks, so every product keeps its block shape.
    per_core = -(-n // (BLOCK * WORKERS)) * BLOCK
    step = max(BLOCK, min(SPAN_ROWS, per_core))
    spans = [(lo, min(lo + step, n)) for lo in range(0, n, step)]
    # A single span too: a product BLAS splits over its threads leaves them spinning for
    # a while after, on cores the rest of the run needs (1.8 % of a backfill's CPU time,
    # from the scenario library's few rows).
    with _single_threaded_blas() as alone:
        if alone and len(spans) > 1 and WORKERS > 1:
            list(pool().map(lambda span: work(*span), spans))
            return
        for lo, hi in spans:
            work(lo, hi)


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[bool]:
    """BLAS on one thread for the block (process-wide), restored after; False where no
    BLAS with a settable thread count is loaded."""
    controller = _blas_controller()
    if controller is None:
        yield False
        return
    with controller.limit(limits=1, user_api="blas"):
        yield True


def _blas_controller() -> Any:
    """threadpoolctl's controller of every BLAS loaded now (OpenBLAS, MKL or BLIS alike:
    numpy's, and one a later import brought, such as faiss's), or None when it finds none.
    Made afresh each time (0.2 ms): a controller kept from before such an import would
    leave that library's threads spinning beside the spans."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    return controller if controller.select(user_api="blas").lib_controllers else None
