from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from stabfrag.config import BuildConfig, parse_weights
from stabfrag.engine import loop
from stabfrag.errors import ConfigError, InputError
from stabfrag.ingest.profiles import read_profiles
from stabfrag.model.bundle import load_models
from stabfrag.model.joint import combine, joint_states, scenario_branch
from stabfrag.schema import DIM
from stabfrag.sinks.dataset import read_table


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_scenario_branch_is_the_softmax_mixture() -> None:
    rng = np.random.default_rng(0)
    z, s = _unit(rng, 4), _unit(rng, 6)
    got = scenario_branch(z, s, 0.1)
    w = np.exp((z @ s.T) / 0.1)
    w /= w.sum(axis=1, keepdims=True)
    want = w @ s
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_missing_profile_drops_out_and_weights_renormalise() -> None:
    rng = np.random.default_rng(1)
    z, b, p = _unit(rng, 2), _unit(rng, 2), _unit(rng, 2)
    w = {"stab": 1.0, "scen": 0.5, "prof": 0.5}
    got = combine(z, b, p, np.array([True, False]), w)
    with_p = (z[0] + 0.5 * b[0] + 0.5 * p[0]) / 2.0
    without = (z[1] + 0.5 * b[1]) / 1.5
    np.testing.assert_allclose(got[0], with_p / np.linalg.norm(with_p), atol=1e-12)
    np.testing.assert_allclose(got[1], without / np.linalg.norm(without), atol=1e-12)


def test_consuming_the_states_gives_the_same_bytes_in_their_array() -> None:
    """Over several row blocks, with profiles on some rows: writing the joint vectors over
    z_stab block by block changes no value."""
    import stabfrag.model.joint as joint

    rng = np.random.default_rng(3)
    n = 2 * joint.ROW_BLOCK + 17
    z = _unit(rng, n).astype(np.float32)
    s, p = _unit(rng, 7), _unit(rng, n).astype(np.float32)
    has = rng.random(n) < 0.5
    kw = {"weights": {"stab": 1.0, "scen": 0.5, "prof": 0.25}, "tau": 0.1}
    high = np.array([False, True, False, True, False, False, True])
    fresh = joint_states(z.copy(), s, high, z_prof=p, has_prof=has, **kw)  # type: ignore[arg-type]
    mine = z.copy()
    consumed = joint_states(mine, s, high, z_prof=p, has_prof=has, consume=True, **kw)  # type: ignore[arg-type]
    assert consumed.vectors is mine
    assert fresh.vectors.tobytes() == mine.tobytes()
    assert np.array_equal(fresh.fragility, consumed.fragility)
    assert np.array_equal(fresh.nearest, consumed.nearest)


def test_nearest_and_fragility() -> None:
    rng = np.random.default_rng(2)
    s = _unit(rng, 5)
    res = joint_states(
        s[[0, 3]],
        s,
        np.array([False, False, False, True, True]),
        weights={"stab": 1.0, "scen": 0.5, "prof": 0.5},
        tau=0.1,
    )
    assert list(res.nearest) == [0, 3]
    sims = res.vectors.astype(np.float64) @ s.T
    np.testing.assert_allclose(res.fragility, sims[:, 3:].max(axis=1), atol=1e-6)


def test_weights_parse() -> None:
    assert parse_weights("stab=1,scen=0.25") == {"stab": 1.0, "scen": 0.25}
    assert parse_weights(None) is None
    for bad in ("stab", "x=1", "stab=-1", "stab=abc"):
        with pytest.raises(ConfigError):
            parse_weights(bad)


def _profiles(
    path: Path, ids: list[str], as_of: dt.date, vectors: np.ndarray, binary: bool
) -> None:
    col = (
        pl.Series([v.astype("<f4").tobytes() for v in vectors], dtype=pl.Binary)
        if binary
        else pl.Series([list(map(float, v)) for v in vectors])
    )
    pl.DataFrame({"entity_id": ids, "as_of_date": [as_of] * len(ids), "vector": col}).write_parquet(
        path
    )


@pytest.mark.parametrize("binary", [False, True])
def test_profiles_pull_vectors_toward_them_point_in_time(
    market_dir: Path, tmp_path: Path, binary: bool
) -> None:
    as_of = dt.date(2024, 12, 31)
    base = tmp_path / "base"
    loop.run(BuildConfig(prices=market_dir / "prices.parquet", out=base), [as_of])
    ents = read_table(base, "joint_embeddings", as_of).filter(pl.col("kind") == "entity")
    ids = ents["entity_id"].to_list()[:10]
    rng = np.random.default_rng(5)
    prof = _unit(rng, len(ids))
    path = tmp_path / "profiles.parquet"
    _profiles(path, ids, as_of, prof, binary)
    # A profile dated after the as-of date must not be used.
    late = tmp_path / "late.parquet"
    _profiles(late, ids, as_of + dt.timedelta(days=1), prof, binary)
    for name, file in (("with", path), ("late", late)):
        loop.run(
            BuildConfig(
                prices=market_dir / "prices.parquet",
                profiles=file,
                out=tmp_path / name,
                weights={"prof": 0.25},  # the default model gives the branch none
            ),
            [as_of],
        )
    got = read_table(tmp_path / "with", "joint_embeddings", as_of).filter(
        pl.col("kind") == "entity"
    )
    late_rows = read_table(tmp_path / "late", "joint_embeddings", as_of).filter(
        pl.col("kind") == "entity"
    )
    before = ents.filter(pl.col("entity_id").is_in(ids))["vector"].to_numpy()
    after = got.filter(pl.col("entity_id").is_in(ids))["vector"].to_numpy()
    cos_before = np.sum(before * prof, axis=1)
    cos_after = np.sum(after * prof, axis=1)
    assert (cos_after > cos_before + 0.1).all()
    assert (
        '"source":"stab+scenarios+profile"'
        in got.filter(pl.col("entity_id") == ids[0])["entity_scope"].item()
    )
    others = got.filter(~pl.col("entity_id").is_in(ids))
    assert (
        others["vector"].to_numpy().tobytes()
        == ents.filter(~pl.col("entity_id").is_in(ids))["vector"].to_numpy().tobytes()
    )
    assert late_rows["vector"].to_numpy().tobytes() == ents["vector"].to_numpy().tobytes()


def test_a_model_without_profile_weight_uses_no_profile_and_says_so(
    market_dir: Path, tmp_path: Path
) -> None:
    """The default model gives the profile branch no weight (it ranks who gets hurt no
    better on generated markets): a build with --profiles writes the vectors of a build
    without, its rows say they have no profile, and the run warns."""
    as_of = dt.date(2024, 12, 31)
    prices = market_dir / "prices.parquet"
    assert load_models().joint.weights["prof"] == 0.0
    base = tmp_path / "base"
    loop.run(BuildConfig(prices=prices, out=base), [as_of])
    ents = read_table(base, "joint_embeddings", as_of).filter(pl.col("kind") == "entity")
    ids = ents["entity_id"].to_list()[:10]
    path = tmp_path / "profiles.parquet"
    _profiles(path, ids, as_of, _unit(np.random.default_rng(5), len(ids)), False)
    summary = loop.run(BuildConfig(prices=prices, profiles=path, out=tmp_path / "with"), [as_of])
    got = read_table(tmp_path / "with", "joint_embeddings", as_of).filter(
        pl.col("kind") == "entity"
    )
    assert got["vector"].to_numpy().tobytes() == ents["vector"].to_numpy().tobytes()
    assert not got["entity_scope"].str.contains("stab\\+scenarios\\+profile").any()
    warned = [w for w in summary.warnings if w.startswith("--profiles:")]
    assert len(warned) == 1 and "--weights prof=W" in warned[0], summary.warnings
    weighed = loop.run(
        BuildConfig(prices=prices, profiles=path, out=tmp_path / "w", weights={"prof": 0.25}),
        [as_of],
    )
    assert not [w for w in weighed.warnings if w.startswith("--profiles:")]
    # A user's own zero weight is named as the reason, not the model's fit.
    off = loop.run(
        BuildConfig(prices=prices, profiles=path, out=tmp_path / "o", weights={"prof": 0.0}),
        [as_of],
    )
    assert [w for w in off.warnings if w.startswith("--profiles:")] == [
        "--profiles: --weights prof=0 gives the profile branch no weight; the profiles "
        "change no vector"
    ]


def test_bad_profiles_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame(
        {"entity_id": ["A"], "as_of_date": [dt.date(2020, 1, 1)], "vector": [[1.0, 2.0]]}
    ).write_parquet(path)
    with pytest.raises(InputError, match="384"):
        read_profiles(path)
