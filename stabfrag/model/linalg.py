"""Row-stable linear algebra: the same row gives the same bytes whatever the batch.

BLAS picks different kernels for different matrix shapes (a single row goes through
another path than a large block), so `a @ b` for one row can differ in the last bit
from the same row inside a large batch. Every product here is taken in blocks of one
fixed shape, zero-padded, so a state's vector does not depend on what else was built
with it (build for one date == backfill over many).
"""

from __future__ import annotations

import numpy as np

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
    for lo in range(0, n, BLOCK):  # blocks of BLOCK rows: matmul_rows' own shape
        hi = min(lo + BLOCK, n)
        unit, good = normalise(matmul_rows(a[lo:hi], b), inplace=True)
        out[lo:hi] = unit
        ok[lo:hi] = good
    return out, ok
