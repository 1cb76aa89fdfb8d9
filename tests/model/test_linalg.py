"""Row-stable products: a row's bytes do not depend on the batch it came in."""

from __future__ import annotations

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
