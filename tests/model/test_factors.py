"""joint-stab-fragility-v4's factor block: declared factors, the geometry it keeps, how it
degrades, and what it tells apart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag import synth
from stabfrag.cli import app
from stabfrag.config import BuildConfig, parse_factors
from stabfrag.engine import loop
from stabfrag.errors import ConfigError, ModelError, ScenarioError
from stabfrag.model.bundle import DEFAULT_JOINT, load_models
from stabfrag.model.factors import (
    ROLES,
    SATURATION,
    SIGNATURE_FEATURES,
    FactorBlock,
    date_signatures,
)
from stabfrag.model.joint import JOINT_V3, JOINT_V4
from stabfrag.model.scenario_space import EPISODE_CONTEXT, MARKET_CONTEXT
from stabfrag.scenarios.library import load_library
from stabfrag.sinks.dataset import partitions, read_manifest, read_table
from stabfrag.synth.shocks import FACTOR_IDS
from tests.conftest import models_with

runner = CliRunner()
FACTORS = dict(FACTOR_IDS)


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    market = synth.generate(entities=150, days=1500, seed=31, factors=True)
    return synth.write_market(market, tmp_path_factory.mktemp("factors"))


def _dates(prices: Path, weeks: int = 104) -> list[dt.date]:
    from stabfrag.asof.calendar import as_of_dates

    days = pl.read_parquet(prices, columns=["date"])["date"]
    last = days.max()
    assert isinstance(last, dt.date)
    return as_of_dates(prices, last - dt.timedelta(weeks=weeks), last, "week")


def _run(prices: Path, out: Path, dates: list[dt.date], **kw: Any) -> dict[str, Any]:
    config = BuildConfig(prices=prices, out=out, chunk_days=400, **kw)
    return loop.run(config, dates).as_dict()


def _vectors(out: Path, kind: str) -> np.ndarray:
    rows = [read_table(out, "joint_embeddings", d) for d in partitions(out)]
    joint = pl.concat(rows).filter(pl.col("kind") == kind)
    return joint["vector"].to_numpy().astype(np.float64)


@pytest.fixture(scope="module")
def builds(panel: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same weeks built with v3 at v4's branch weights (no scenario branch), with v4
    and no factors, and with v4 and the factors."""
    dates = _dates(panel["prices"])
    root = tmp_path_factory.mktemp("builds")
    # v3 as v4 reads it: v4's branch weights, each historical episode in its market's
    # context on its last day (v4's choice; v3 keeps an episode's own).
    v3 = models_with(root / "models", JOINT_V3, **{EPISODE_CONTEXT: MARKET_CONTEXT})
    assert load_models().joint.manifest[EPISODE_CONTEXT] == MARKET_CONTEXT
    runs = {
        "v3": {"model": JOINT_V3, "weights": load_models().joint.weights, "model_dir": v3},
        "v4 alone": {"model": JOINT_V4},
        "v4": {"model": JOINT_V4, "factors": FACTORS},
    }
    return {
        name: (root / name, _run(panel["prices"], root / name, dates, **kw))
        for name, kw in runs.items()
    }


def test_v4_is_the_default_and_names_its_base() -> None:
    v4 = load_models()
    assert v4.model_id == DEFAULT_JOINT == JOINT_V4
    assert v4.joint.manifest["base_model"] == JOINT_V3
    v3 = load_models(None, JOINT_V3)
    assert v4.stab.model_id == v3.stab.model_id and v4.scen.model_id == v3.scen.model_id
    block = v4.joint.factors
    assert block is not None
    # The block's directions: orthonormal, and orthogonal to everything v3 writes.
    assert np.allclose(block.basis @ block.basis.T, np.eye(len(block.basis)), atol=1e-10)
    assert np.abs(block.basis @ v3.stab.projection.T).max() < 1e-10
    assert block.scenario_map.shape[1] == len(ROLES) * len(SIGNATURE_FEATURES)


def test_without_factors_the_vectors_are_v3s(builds: dict[str, Any]) -> None:
    """A build that declares no factors writes v3's vectors at v4's branch weights, its
    episodes in their market's context (the universe alone did not tell shock types apart
    on real markets), and says so."""
    (v3_out, _), (alone_out, summary) = builds["v3"], builds["v4 alone"]
    for kind in ("entity", "scenario"):
        assert np.array_equal(_vectors(v3_out, kind), _vectors(alone_out, kind))
    assert summary["factors"].startswith("none declared: the factor block is left off")
    assert "stab=1,scen=0.25,prof=0" in summary["factors"]


def _sources(out: Path) -> set[str]:
    rows = pl.concat([read_table(out, "joint_embeddings", d) for d in partitions(out)])
    scopes = rows.filter(pl.col("kind") == "entity")["entity_scope"]
    return set(scopes.str.json_path_match("$.source").to_list())


def test_the_rows_name_the_parts_their_vectors_hold(builds: dict[str, Any]) -> None:
    """entity_scope's source names what a vector holds: v4's scenario branch (at 0.25),
    and a factor block only when factors are declared."""
    assert _sources(builds["v4"][0]) == {"stab+scenarios+factors"}
    assert _sources(builds["v4 alone"][0]) == {"stab+scenarios"}


def test_the_block_leaves_v3s_vector_whole(builds: dict[str, Any]) -> None:
    """v4 = normalise(v3 + block) with the block in directions v3 never uses: taking the
    block out of a v4 vector gives back the v3 vector of the same state or scenario."""
    block = load_models().joint.factors
    assert block is not None
    (v3_out, _), (v4_out, summary) = builds["v3"], builds["v4"]
    assert summary["factors"] == ",".join(f"{r}={e}" for r, e in FACTORS.items())
    for kind in ("entity", "scenario"):
        v3, v4 = _vectors(v3_out, kind), _vectors(v4_out, kind)
        inside = v4 @ block.basis.T
        assert np.abs(inside).max() > 0.1  # the block is there
        rest = v4 - inside @ block.basis
        rest /= np.linalg.norm(rest, axis=1, keepdims=True)
        assert np.allclose(rest, v3, atol=1e-5)


def test_the_factors_name_the_shock_type(builds: dict[str, Any], panel: dict[str, Path]) -> None:
    """On the generated panel's market-wide episodes, the states' nearest scenario is of
    the episode's type far more often with the factors than without."""
    labels = pl.read_csv(panel["labels"], try_parse_dates=True).filter(
        pl.col("entity_id").is_null(), pl.col("label") == "stress"
    )
    shares = {}
    for name in ("v3", "v4"):
        out = builds[name][0]
        joint = pl.concat([read_table(out, "joint_embeddings", d) for d in partitions(out)])
        table = pl.concat([read_table(out, "scenarios", d) for d in partitions(out)])
        named = (
            joint.filter(pl.col("kind") == "entity")
            .join(
                table.select("as_of_date", "scenario_id", "shock_type"),
                left_on=["as_of_date", "nearest_scenario_id"],
                right_on=["as_of_date", "scenario_id"],
            )
            .join_where(
                labels.select("start", "end", pl.col("shock_type").alias("truth")),
                pl.col("as_of_date") >= pl.col("start"),
                pl.col("as_of_date") <= pl.col("end"),
            )
        )
        assert named.height > 0
        per_type = named.group_by("truth").agg((pl.col("shock_type") == pl.col("truth")).mean())
        shares[name] = float(per_type["shock_type"].mean())
    assert shares["v4"] >= 0.5 and shares["v4"] > shares["v3"] + 0.2, shares


def test_a_crisis_move_reads_apart_from_a_calm_wander() -> None:
    """The shipped block's bound (its fit's choice) keeps a crisis's move, four
    interquartile ranges out, well apart from a calm series' wander of one and a half: at
    the first v4's bound of 2 they read 1.93 and 1.27, and a credit crisis whose dollar
    drifted up was named an FX crisis for weeks."""
    block = load_models().joint.factors
    assert block is not None and block.saturation > SATURATION
    i = SIGNATURE_FEATURES.index("move_21")
    centre, spread = block.center["factor"], block.spread["factor"]
    frame = pl.DataFrame({f: [centre[j]] * 2 for j, f in enumerate(SIGNATURE_FEATURES)})
    frame = frame.with_columns(pl.Series("move_21", centre[i] - spread[i] * np.array([4.0, 1.5])))
    crisis, wander = block.scaled(frame, "credit")[:, i]
    assert crisis / wander > 2.0, (crisis, wander)
    assert crisis > -block.saturation


def test_a_declared_markets_volume_keeps_the_first_bound() -> None:
    """The universe's constants are a median's: a declared market's thin summer volume,
    four ranges below, reads no further out than the first bound (an index fund's calm
    year would otherwise lean toward a liquidity dry-up), while a median's that low reads
    beyond it, as the fit's generated dry-ups do."""
    block = load_models().joint.factors
    assert block is not None
    i = SIGNATURE_FEATURES.index("volume_z_21_252")
    centre, spread = block.center["universe"], block.spread["universe"]
    frame = pl.DataFrame({f: [centre[j]] for j, f in enumerate(SIGNATURE_FEATURES)})
    frame = frame.with_columns(pl.lit(centre[i] - 4.0 * spread[i]).alias("volume_z_21_252"))
    median = block.scaled(frame, "universe")[0]
    market = block.scaled(frame, "universe", market=True)[0]
    assert median[i] < -SATURATION < market[i] < -1.9
    assert np.array_equal(np.delete(median, i), np.delete(market, i))


def test_a_block_that_records_no_bound_reads_as_the_first_v4() -> None:
    """A v4 artefact fitted before the bound was fitted (its manifest has none) keeps its
    vectors: it reads with the first v4's bound."""
    models = load_models()
    assert models.joint.factors is not None
    spec = dict(models.joint.manifest["factor_block"])
    assert spec.pop("saturation") == models.joint.factors.saturation
    assert FactorBlock.from_manifest(spec, models.joint.factors.basis).saturation == SATURATION
    for bad in (0.0, -2.0, float("nan"), float("inf")):  # a bound that would write NaNs
        with pytest.raises(ModelError, match="saturation"):
            FactorBlock.from_manifest({**spec, "saturation": bad}, models.joint.factors.basis)


def test_a_factor_missing_on_a_date_reads_as_calm(builds: dict[str, Any]) -> None:
    """A declared factor without a state on a date (a fund listed later) adds nothing to
    that date's departure: its part of the signature is a calm market's."""
    block = load_models().joint.factors
    assert block is not None
    out = builds["v4"][0]
    states = pl.concat([read_table(out, "features", d) for d in partitions(out)])
    first = states["as_of_date"].min()
    gone = states.filter(
        ~((pl.col("entity_id") == FACTORS["credit"]) & (pl.col("as_of_date") == first))
    )
    dates, signature = date_signatures(block, gone, factors=FACTORS, market=None)
    width = len(SIGNATURE_FEATURES)
    credit = slice(ROLES.index("credit") * width, (ROLES.index("credit") + 1) * width)
    row = dates["as_of_date"].to_list().index(first)
    assert np.array_equal(signature[row, credit], block.calm_signature[credit])
    assert not np.array_equal(signature[row + 1, credit], block.calm_signature[credit])
    assert block.departures(signature, ROLES).shape == (dates.height, len(block.basis))


def test_a_subset_book_holding_the_references_gives_the_same_bytes(
    panel: dict[str, Path], tmp_path: Path
) -> None:
    """With the market and the factors declared, an entity-date's vector does not depend
    on the rest of the book."""
    dates = _dates(panel["prices"], weeks=8)
    prices = pl.read_parquet(panel["prices"])
    entities = pl.read_parquet(panel["entities"])
    markets = entities.filter(pl.col("entity_type") == "MARKET")["entity_id"].to_list()
    market = next(e for e in markets if e not in FACTORS.values())
    ids = sorted(set(prices["entity_id"].to_list()) - {market, *FACTORS.values()})
    kept = [market, *FACTORS.values(), *ids[:30]]
    fewer = tmp_path / "fewer.parquet"
    prices.filter(pl.col("entity_id").is_in(kept)).write_parquet(fewer)
    kw = {"model": JOINT_V4, "factors": FACTORS, "market": market}
    _run(panel["prices"], tmp_path / "all", dates, **kw)
    _run(fewer, tmp_path / "fewer", dates, **kw)
    for day in dates:
        whole, part = (
            read_table(tmp_path / name, "joint_embeddings", day)
            .filter(pl.col("entity_id").is_in(kept))
            .select("entity_id", "vector", "fragility", "nearest_scenario_id")
            .sort("entity_id")
            for name in ("all", "fewer")
        )
        assert whole.height == part.height > 30 and whole.equals(part), day


def test_factors_are_checked_and_recorded(panel: dict[str, Path], tmp_path: Path) -> None:
    assert parse_factors(" rates = TLT ,equity=SPY") == {"equity": "SPY", "rates": "TLT"}
    for bad in ("gold=GLD", "rates", "rates=", "rates=TLT,rates=IEF"):
        with pytest.raises(ConfigError, match="--factors"):
            parse_factors(bad)
    # One series cannot play two factors: its states would read as both shocks at once.
    with pytest.raises(ConfigError, match="--factors: SPY plays equity and credit"):
        parse_factors("equity=SPY,rates=TLT,credit=SPY")
    day = _dates(panel["prices"], weeks=1)[-1].isoformat()
    base = ["build", "--as-of", day, "--prices", str(panel["prices"])]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "a"), "--factors", "rates=NOPE"])
    assert res.exit_code == 2
    assert res.stderr.startswith("stabfrag: --factors rates=NOPE: no prices for this entity")
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--factors", "gold=GLD"])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    factors = f"equity={FACTORS['equity']},rates={FACTORS['rates']}"
    out = tmp_path / "c"
    res = runner.invoke(app, [*base, "--out", str(out), "--factors", factors, "--json"])
    assert res.exit_code == 0, res.stderr
    manifest = read_manifest(out, dt.date.fromisoformat(day)) or {}
    assert manifest["factors"] == parse_factors(factors)
    res = runner.invoke(
        app,
        [*base, "--out", str(tmp_path / "d"), "--factors", factors, "--model", JOINT_V3, "--json"],
    )
    assert res.exit_code == 0 and "has no factor block; the factors are not used" in res.stdout


def test_scenario_factor_shocks_are_checked(tmp_path: Path) -> None:
    lib = load_library()
    assert all(s.factor_shocks for s in lib)  # every shipped scenario declares its moves
    gfc = next(s for s in lib if s.id == "SCN_GFC_2008")
    assert dict(gfc.factor_shocks)["equity"] == -0.47
    base = (
        '[[scenario]]\nid = "X"\nkind = "synthetic"\nshock_type = "FX_CRISIS"\n'
        'severity = "LOW"\ndescription = "x"\nhorizon_days = 20\nprice_shock = -0.05\n'
        "vol_multiplier = 1.2\nvolume_multiplier = 1.0\n"
    )
    for line, why in (
        ("factor_shocks = { gold = 0.1 }", "'gold' is not one of"),
        ("factor_shocks = { fx = 3.0 }", "factor_shocks.fx: 3.0 is outside"),
        ('factor_shocks = { fx = "up" }', "factor_shocks.fx: 'up' is not a number"),
        ("factor_shocks = 0.1", "not a table of FACTOR = move"),
    ):
        (tmp_path / "lib.toml").write_text(base + line + "\n")
        with pytest.raises(ScenarioError, match=why):
            load_library(tmp_path)


def test_the_library_takes_factors_as_text_or_a_mapping(
    panel: dict[str, Path], tmp_path: Path
) -> None:
    from stabfrag import api

    day = _dates(panel["prices"], weeks=1)[-1]
    text = f"rates={FACTORS['rates']},equity={FACTORS['equity']}"
    by_text = api.build(panel["prices"], as_of=day, out=tmp_path / "a", factors=text)
    mapping = {"rates": FACTORS["rates"], "equity": FACTORS["equity"]}
    by_map = api.build(panel["prices"], as_of=day, out=tmp_path / "b", factors=mapping)
    assert (
        by_text.factors == by_map.factors == f"equity={FACTORS['equity']},rates=" + FACTORS["rates"]
    )
    a, b = (read_table(tmp_path / n, "joint_embeddings", day) for n in ("a", "b"))
    assert a["vector"].to_list() == b["vector"].to_list()
    with pytest.raises(ConfigError, match="--factors: 'gold=GLD'"):
        api.build(panel["prices"], as_of=day, out=tmp_path / "c", factors={"gold": "GLD"})


def test_an_episodes_observed_factors_enter_once_it_has_ended(
    panel: dict[str, Path], tmp_path: Path
) -> None:
    """The generated panel's market plays SPY and its factors the ETFs: COVID's scenario
    (SPY, 2020-02-19 to 2020-03-23) takes the factors' observed states over the episode
    from its end on, and no scenario vector as of a date depends on a later price."""
    from stabfrag.model.scenario_space import ScenarioLibrary, reference_prices

    entities = pl.read_parquet(panel["entities"])
    markets = entities.filter(pl.col("entity_type") == "MARKET")["entity_id"].to_list()
    market = next(e for e in markets if e not in FACTORS.values())
    etfs = {"equity": "SPY", "rates": "TLT", "credit": "HYG", "fx": "UUP", "commodity": "GLD"}
    names = {market: "SPY", **{FACTORS[r]: etfs[r] for r in ("rates", "credit", "fx")}}
    names[FACTORS["commodity"]] = "GLD"
    prices = pl.read_parquet(panel["prices"]).with_columns(pl.col("entity_id").replace(names))
    etf_factors = {r: e for r, e in etfs.items() if r != "equity"}  # SPY is the market too
    models, library = load_models(), load_library()

    def space(cut: dt.date | None, day: dt.date, held: bool = True) -> Any:
        path = tmp_path / f"{cut}{held}.parquet"
        kept = prices if held else prices.filter(~pl.col("entity_id").is_in(["TLT", "HYG"]))
        (kept if cut is None else kept.filter(pl.col("date") <= cut)).write_parquet(path)
        refs, ticks = reference_prices(path, library, also=tuple(etf_factors.values()))
        lib = ScenarioLibrary(
            models, library, refs, max_staleness_days=7, reference_ticks=ticks, factors=etf_factors
        )
        return lib.space(lib.key(day))

    before, after = dt.date(2020, 3, 20), dt.date(2020, 6, 30)
    assert np.array_equal(space(None, before).vectors, space(before, before).vectors)
    assert np.array_equal(space(None, after).vectors, space(after, after).vectors)
    then, now = space(None, before), space(None, after)
    covid = now.table["scenario_id"].to_list().index("SCN_COVID_CRASH_2020")
    assert now.table["path_source"][covid] == "reference:SPY"
    assert "SCN_COVID_CRASH_2020" not in then.table["scenario_id"].to_list()
    # The crash type's block takes COVID's observed rates and credit states: without
    # those two series in the prices, it takes COVID's declared moves for them instead.
    block = models.joint.factors
    assert block is not None
    declared = space(None, after, held=False)
    crash = now.table["scenario_id"].to_list().index("SCN_EQ_CRASH_HIGH")
    assert declared.table["scenario_id"].to_list() == now.table["scenario_id"].to_list()
    assert not np.allclose(
        now.vectors[crash] @ block.basis.T, declared.vectors[crash] @ block.basis.T
    )


def test_a_declared_factor_without_a_state_is_counted_and_warned(
    panel: dict[str, Path], tmp_path: Path
) -> None:
    """A declared factor with no state on a date (too short a history there) reads as
    calm for that date, and the run says so: how many states' dates lacked it, and a
    warning naming it, as it does for a market without a state."""
    prices = pl.read_parquet(panel["prices"])
    credit = FACTORS["credit"]
    late = prices.filter(pl.col("entity_id") == credit).sort("date").tail(40)
    short = tmp_path / "short.parquet"
    prices.filter(pl.col("entity_id") != credit).vstack(late).write_parquet(short)
    dates = _dates(panel["prices"], weeks=3)
    declared = {"equity": FACTORS["equity"], "credit": credit}
    summary = _run(short, tmp_path / "a", dates, model=JOINT_V4, factors=declared)
    states = summary["states_out"]
    assert summary["states_without_factor"] == {"credit": states}, summary
    warned = [w for w in summary["warnings"] if w.startswith("--factors credit=")]
    assert len(warned) == 1 and f"{states:,} states" in warned[0] and "calm" in warned[0]
    whole = _run(panel["prices"], tmp_path / "b", dates, model=JOINT_V4, factors=declared)
    assert whole["states_without_factor"] == {}
    assert not [w for w in whole["warnings"] if w.startswith("--factors")]
    # The page of a date says which declared factor had no state that date.
    from stabfrag.analysis.report import build_report

    gap = f"The credit factor {credit} had no state on this date"
    for name, said in (("a", True), ("b", False)):
        page = build_report(tmp_path / name, dates[-1], tmp_path / f"{name}.html").path
        assert (gap in page.read_text()) is said
