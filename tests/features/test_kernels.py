"""The window folds against plain numpy, and their independence from what surrounds a window."""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stabfrag.features import kernels
from stabfrag.features.kernels import blocked


def _naive(values: np.ndarray, n: int, fn) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.full(len(values), np.nan)
    for t in range(n - 1, len(values)):  # the deliberately naive twin
        out[t] = fn(values[t - n + 1 : t + 1])
    return out


STATS = {
    "rolling_sum": np.sum,
    "rolling_mean": np.mean,
    "rolling_min": np.min,
    "rolling_max": np.max,
    "rolling_var": lambda w: np.var(w, ddof=1),
    "max_drawdown": lambda w: float(np.min(w / np.maximum.accumulate(w) - 1)),
    "rows_since_max": lambda w: float(len(w) - 1 - np.flatnonzero(w == w.max())[-1]),
}


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 80),
    length=st.integers(0, 300),
    stat=st.sampled_from(sorted(STATS)),
)
def test_fold_matches_naive(seed: int, n: int, length: int, stat: str) -> None:
    if stat == "rolling_var" and n < 2:
        return  # a sample variance needs two values
    rng = np.random.default_rng(seed)
    values = np.exp(rng.normal(0, 0.05, length)).cumprod()
    if stat == "rows_since_max":
        values = np.round(values, 1)  # ties: the latest maximum counts
    got = getattr(kernels, stat)(values, n)
    want = _naive(values, n, STATS[stat])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, equal_nan=True)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 70))
def test_smallest_mean_matches_sort(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1, 200)
    got = kernels.smallest_mean(values, n, 4)
    want = _naive(values, n, lambda w: np.sort(w)[:4].mean() if len(w) >= 4 else np.nan)
    if n < 4:
        return  # fewer than 4 values: padding, not a statistic anyone asks for
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_a_null_in_the_window_gives_nan() -> None:
    values = np.arange(20.0)
    values[10] = np.nan
    got = kernels.rolling_sum(values, 5)
    assert np.isnan(got[10:15]).all() and not np.isnan(got[15:]).any()


def test_values_depend_only_on_their_window() -> None:
    rng = np.random.default_rng(3)
    core = rng.normal(0, 1, 500)
    for stat in ("rolling_var", "rolling_mean", "max_drawdown"):
        fn = getattr(kernels, stat)
        x = np.exp(core) if stat == "max_drawdown" else core
        alone = fn(x, 63)
        # The same values after 10,000 others of a wildly different scale.
        padded = np.concatenate([np.exp(rng.normal(20, 5, 10_000)), x])
        assert alone[62:].tobytes() == fn(padded, 63)[10_000 + 62 :].tobytes(), stat


def test_blocks_give_the_same_bytes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, 5000)
    whole = kernels.rolling_var(x, 252)
    monkeypatch.setattr(kernels, "BLOCK_ROWS", 300)
    again = blocked(kernels.rolling_var.__wrapped__)(x, 252)
    assert whole.tobytes() == again.tobytes()


def test_wanted_rows_in_blocks_of_rows_give_the_folds_bytes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Low levels built per block of rows (with the n - 1 rows before it): the same bytes
    at every wanted row, whichever block it falls in."""
    rng = np.random.default_rng(5)
    x = np.exp(rng.normal(0, 0.02, 6000)).cumprod()
    # Random rows, and the first and last rows of every block.
    edges = np.arange(0, len(x), 500)
    at = np.union1d(np.flatnonzero(rng.random(len(x)) < 1 / 21), np.r_[edges[1:], edges[1:] - 1])
    monkeypatch.setattr(kernels, "BLOCK_ROWS", 500)
    for name, args in SPARSE_CASES:
        stat = getattr(kernels, name)
        for n in (63, 252):
            assert kernels.dense_levels(len(x), len(at), n) not in (None, 0)
            full = at[at >= n - 1]
            dense = stat.__wrapped__(x, n, *args)[full]
            assert stat(x, n, *args, at=at)[full].tobytes() == dense.tobytes(), (name, n)


def test_features_from_the_windows_only_equal_the_whole_series() -> None:
    """engine.windows_only drops every row no requested state reads: same feature bytes."""
    import polars as pl

    from stabfrag.asof.requests import windows_only
    from stabfrag.features.plan import compute_features
    from stabfrag.features.registry import LOOKBACK_ROWS
    from stabfrag.ingest.runs import entity_starts
    from tests.conftest import random_panel

    series = random_panel(3, 6, 900, min_len=20)
    # States on the last 30 rows of each entity (all of a short one's rows are read).
    late = series.select(pl.int_range(pl.len()).reverse().over("entity_id") < 30)
    picked = np.flatnonzero(late.to_series().to_numpy())
    requests = pl.DataFrame({"_pos": picked, "entity_id": series["entity_id"].gather(picked)})
    trimmed, moved, starts = windows_only(series, requests, entity_starts(series["entity_id"]))
    assert trimmed.height < series.height - LOOKBACK_ROWS  # something was dropped
    whole = compute_features(series, rows=picked).drop("_pos")
    part = compute_features(trimmed, rows=moved["_pos"].to_numpy(), starts=starts).drop("_pos")
    assert part.equals(whole)


def test_windows_only_keeps_each_asked_entity_from_its_first_window_and_no_other() -> None:
    """Checked against a plain per-entity reading of the rule on random requests."""
    import polars as pl

    from stabfrag.asof.requests import windows_only
    from stabfrag.features.registry import LOOKBACK_ROWS
    from stabfrag.ingest.runs import entity_starts
    from tests.conftest import random_panel

    rng = np.random.default_rng(5)
    series = random_panel(11, 8, 1200, min_len=30)
    ids = series["entity_id"].to_list()
    asked = sorted(set(ids))[1:-1]  # the first and the last entity get no state
    rows = [i for i, e in enumerate(ids) if e in asked and rng.random() < 0.02]
    requests = pl.DataFrame({"_pos": rows, "entity_id": [ids[i] for i in rows]})
    trimmed, moved, starts = windows_only(series, requests, entity_starts(series["entity_id"]))
    first: dict[str, int] = {}
    for i in rows:  # rows ascend: an entity's first request is its first window's end
        first.setdefault(ids[i], i)
    kept = [i for i, e in enumerate(ids) if e in first and i >= first[e] - LOOKBACK_ROWS]
    assert trimmed.equals(series[kept])
    assert starts.tolist() == entity_starts(trimmed["entity_id"]).tolist()
    assert moved["_pos"].to_list() == [kept.index(i) for i in rows]
    assert moved.drop("_pos").equals(requests.drop("_pos"))


SPARSE_CASES = [
    ("rolling_sum", ()),
    ("rolling_mean", ()),
    ("rolling_min", ()),
    ("rolling_max", ()),
    ("rolling_var", ()),
    ("max_drawdown", ()),
    ("rows_since_max", ()),
    ("smallest_mean", (4,)),
]


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(2, 300),
    length=st.integers(1, 900),
    density=st.sampled_from([1.0, 0.3, 0.05, 0.01, 0.003]),
)
def test_wanted_rows_alone_are_the_folds_bytes(
    seed: int, n: int, length: int, density: float
) -> None:
    """The gathered-window path gives each wanted row the fold's exact bytes (NaNs, ties)."""
    rng = np.random.default_rng(seed)
    values = np.exp(rng.normal(0, 0.05, length)).cumprod()
    if rng.random() < 0.3:
        values[rng.integers(0, length, 3)] = np.nan
    if rng.random() < 0.3:
        values = np.round(values, 1)  # ties for the latest maximum
    at = np.flatnonzero(rng.random(length) < density)
    full = at[at >= n - 1]  # rows whose window starts inside the column
    for name, args in SPARSE_CASES:
        stat = getattr(kernels, name)
        dense = stat(values, n, *args)[full].tobytes()
        if len(full):  # every number of levels built densely, taken or not by the cost model
            for levels in range(n.bit_length()):
                with mock.patch.object(kernels, "dense_levels", lambda *_, k=levels: k):
                    got = stat.__wrapped__(values, n, *args, at=full)
                assert got.tobytes() == dense, (name, levels)
            assert stat.__wrapped__(values, n, *args, at=full).tobytes() == dense, name
        assert stat(values, n, *args, at=at)[full].tobytes() == dense, name


def test_the_cost_model_builds_low_levels_where_wanted_rows_are_dense() -> None:
    assert kernels.dense_levels(1_000_000, 1_000_000 // 295, 252) == 0  # a build: windows
    assert kernels.dense_levels(1_000_000, 1_000_000 // 21, 63) == 2  # month-ends
    assert kernels.dense_levels(1_000_000, 1_000_000 // 21, 252) == 4
    assert kernels.dense_levels(1_000_000, 1_000_000 // 2, 252) is None  # the fold
    assert kernels.dense_levels(1_000_000, 1_000_000, 21) is None  # every row


def test_features_at_wanted_rows_equal_features_at_every_row() -> None:
    """compute_features(rows=...) lets the short windows skip other rows: same bytes."""
    import polars as pl

    from stabfrag.features.plan import compute_features
    from tests.conftest import random_panel

    series = random_panel(9, 5, 1500, min_len=400)
    rng = np.random.default_rng(9)
    for every in (21, 295):  # month-ends, and about one row per entity
        rows = np.flatnonzero(rng.random(series.height) < 1 / every)
        assert kernels.dense_levels(series.height, len(rows), 63) is not None
        part = compute_features(series, rows=rows)
        whole = compute_features(series)[rows]
        assert part.equals(whole, null_equal=True)
        assert part.select(pl.all().exclude("_pos")).null_count().sum_horizontal().item() < (
            part.height * part.width
        )


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.integers(0, 50), max_size=40), presorted=st.booleans())
def test_unique_rows_is_numpys_unique(rows: list[int], presorted: bool) -> None:
    from stabfrag.features.plan import unique_rows

    a = np.array(sorted(rows) if presorted else rows, dtype=np.int64)
    got = unique_rows(a)
    assert got.dtype == a.dtype
    assert got.tolist() == np.unique(a).tolist()
