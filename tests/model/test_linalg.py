"""Row-stable products: a row's bytes do not depend on the batch it came in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stabfrag.model.linalg import BLOCK, matmul_rows, normalise, project_unit


@pytest.mark.parametrize("rows", [1, 7, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_row_is_the_same_bytes_alone_and_in_a_batch(rows: int, dtype: type) -> None:
    rng = np.random.default_rng(rows)
    a = rng.standard_normal((rows, 23)).astype(dtype)
    b = rng.standard_normal((23, 384))
    batch = matmul_rows(a, b)
    assert batch.shape == (rows, 384) and batch.dtype == np.float64
    np.testing.assert_allclose(batch, a.astype(np.float64) @ b, rtol=1e-12, atol=1e-12)
    for i in {0, rows // 2, rows - 1}:
        assert matmul_rows(a[i : i + 1], b).tobytes() == batch[i].tobytes()


def test_the_input_is_not_changed_and_a_view_is_read_as_is() -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 384)).astype(np.float32)
    before = a.copy()
    transposed = rng.standard_normal((30, 384))
    got = matmul_rows(a[::2], transposed.T)  # a strided view, and a transposed b
    np.testing.assert_array_equal(a, before)
    assert got.tobytes() == matmul_rows(np.ascontiguousarray(a[::2]), transposed.T.copy()).tobytes()


def test_project_unit_is_the_normalised_product_in_float32() -> None:
    rng = np.random.default_rng(4)
    a = rng.standard_normal((BLOCK + 5, 23))
    a[3] = 0.0  # a row with no direction
    b = rng.standard_normal((23, 384))
    unit, ok = project_unit(a, b)
    expect, expect_ok = normalise(matmul_rows(a, b))
    assert unit.dtype == np.float32
    assert unit.tobytes() == expect.astype(np.float32).tobytes()
    np.testing.assert_array_equal(ok, expect_ok)
    assert not ok[3] and ok.sum() == len(a) - 1


def test_row_spans_cover_every_row_once() -> None:
    from stabfrag.model import linalg

    for n in (0, 1, 3 * linalg.BLOCK + 5, linalg.SPAN_ROWS, 3 * linalg.SPAN_ROWS + 7):
        seen = np.zeros(n, dtype=int)
        starts: list[int] = []

        def work(lo: int, hi: int, seen: np.ndarray = seen, starts: list[int] = starts) -> None:
            seen[lo:hi] += 1
            starts.append(lo)

        linalg.by_row_spans(n, work)
        assert (seen == 1).all()
        assert all(lo % linalg.BLOCK == 0 for lo in starts)  # products keep their blocks
        if n > linalg.BLOCK:  # a few thousand rows are shared out too
            assert len(starts) > 1


def _blas_threads() -> list[int]:
    """The thread counts of the BLAS numpy's products run on (numpy's own wheel's; a
    library another package brings, such as faiss's OpenMP OpenBLAS, runs none of them)."""
    from threadpoolctl import threadpool_info

    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    numpys = [lib for lib in blas if "numpy" in Path(lib["filepath"]).parent.name]
    return [lib["num_threads"] for lib in numpys or blas]


def test_blas_is_single_threaded_in_every_span() -> None:
    """A single span too: BLAS threads woken by a small product spin for a while after."""
    from stabfrag.model import linalg

    if linalg._blas_controller() is None:
        pytest.skip("this numpy's BLAS thread count cannot be set")
    before = _blas_threads()
    seen: list[list[int]] = []
    for n in (30, 3 * linalg.SPAN_ROWS):
        linalg.by_row_spans(n, lambda lo, hi: seen.append(_blas_threads()))
    assert seen and all(threads == [1] * len(before) for threads in seen)
    assert _blas_threads() == before  # restored after


def test_spans_on_every_core_give_the_bytes_of_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Products and joint vectors are the same bytes whether the spans run side by side
    (BLAS single-threaded) or one after another (BLAS as it was)."""
    from stabfrag.model import linalg
    from stabfrag.model.joint import joint_states

    rng = np.random.default_rng(6)
    n = 2 * linalg.SPAN_ROWS + 300
    a = rng.standard_normal((n, 23))
    b = rng.standard_normal((23, 384))
    scen = rng.standard_normal((30, 384))
    scen /= np.linalg.norm(scen, axis=1, keepdims=True)
    high = np.arange(30) < 8

    def run() -> list[bytes]:
        unit, ok = project_unit(a, b)
        res = joint_states(unit, scen, high, weights={"stab": 1.0, "scen": 0.5}, tau=0.1)
        return [x.tobytes() for x in (unit, ok, res.vectors, res.nearest, res.fragility)]

    side_by_side = run()
    monkeypatch.setattr(linalg, "_blas_controller", lambda: None)
    assert run() == side_by_side
