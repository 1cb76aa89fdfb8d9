"""joint-stab-fragility-v2: a deterministic fit, artefacts that verify, and its geometry:
nulls do not pull toward a scenario, intensity counts, a fixed reference changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from stabfrag.config import BuildConfig
from stabfrag.engine import loop
from stabfrag.features.registry import FEATURE_NAMES, LOOKBACK_ROWS
from stabfrag.fitting.v2 import Universe, fit_v2
from stabfrag.model.bundle import DEFAULT_JOINT, load_models
from stabfrag.model.encode import market_context
from stabfrag.model.joint import JOINT_V1, JOINT_V2, JOINT_V3
from stabfrag.model.linalg import normalise
from stabfrag.model.scenario_space import ScenarioLibrary
from stabfrag.scenarios.library import load_library
from stabfrag.schema import PRICE_SCHEMA
from stabfrag.sinks.dataset import partitions, read_table
from stabfrag.synth import Market
from tests.conftest import event_dates

LONG_WINDOWS = (  # the features a young entity lacks: ten of them
    "vol_252",
    "vol_ratio_21_252",
    "dd_252",
    "days_since_peak_252",
    "volume_z_21_252",
    "vol_21_lag21",
    "vol_21_lag42",
    "dd_252_lag21",
    "dd_252_lag42",
    "parkinson_vol_21",
)


def _tiny_fit(folder: Path) -> dict:
    return fit_v2(
        folder,
        train=(Universe(5, 60, 800), Universe(6, 40, 800)),
        validation=Universe(7, 60, 800),
        penalties=(0.1,),
        iters=25,
    )


def _same_artefacts(a: Path, b: Path, models: tuple[str, ...]) -> None:
    """The artefacts of two fits are the same bytes (the manifest's creation time aside)."""
    for model in models:
        assert (a / model / "projection.npy").read_bytes() == (
            b / model / "projection.npy"
        ).read_bytes()
        ma, mb = (json.loads((f / model / "manifest.json").read_text()) for f in (a, b))
        ma.pop("created"), mb.pop("created")
        assert ma == mb, model


def test_fit_is_deterministic_and_its_artefacts_verify(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    record = _tiny_fit(a)
    _tiny_fit(b)
    _same_artefacts(a, b, ("num-stab-core-v2", "num-scenario-core-v2", JOINT_V2))
    models = load_models(a)
    assert models.model_id == JOINT_V2 and models.stab.context
    joint = models.joint.manifest
    assert joint["objective"].startswith("proxy-NCA")
    assert joint["training_data"]["real_labels"] == "none"
    assert joint["training_data"]["universes"][0] == {"seed": 5, "entities": 60, "days": 800}
    assert set(joint["fitted_figures"]["validation"]) == {
        "state_auc",
        "analog_precision_at_10",
        "calm_to_high",
        "shock_type_accuracy",
        "cross_section_auc",
    }
    assert record["hyperparameters"]["penalty"] == 0.1


def test_the_v3_fit_is_deterministic_and_keeps_v2s_figures(tmp_path: Path) -> None:
    """v3 extends the folder's v2 (here a tiny fitted one): the same seeds give the same
    artefacts, the choice keeps v2's validation figures and fragility follows r."""
    from stabfrag.fitting.v3 import FOLLOWS_R, fit_v3

    tiny = {
        "train": (Universe(5, 60, 800), Universe(6, 40, 800)),
        "validation": Universe(7, 60, 800),
    }
    records = []
    for name in ("a", "b"):
        _tiny_fit(tmp_path / name)
        records.append(fit_v3(tmp_path / name, **tiny))  # type: ignore[arg-type]
    a, b = tmp_path / "a", tmp_path / "b"
    _same_artefacts(a, b, ("num-stab-core-v3", "num-scenario-core-v3", JOINT_V3))
    models = load_models(a, JOINT_V3)
    assert models.stab.risk is not None and not models.stab.exposed_end
    assert models.scen.exposed_end and models.scen.own_length == 0.0
    figures = records[0]["fitted_figures"]
    assert figures["validation"]["follows_r"] >= FOLLOWS_R
    assert figures["validation"]["state_auc"] >= figures["validation_v2"]["state_auc"] - 0.005
    assert records[0]["training_data"]["real_labels"] == "none"


def test_v3_fragility_ranks_a_date_by_its_risk(built: Path) -> None:
    """Within a date every block of a v3 state but the risk angle has one length, and every
    scenario sits at the angle's exposed end: fragility orders the date's states as r."""
    from stabfrag.model.encode import encode_states, join_scenarios
    from stabfrag.model.encoder import risk_score

    v3 = load_models(None, JOINT_V3)
    day = partitions(built)[-1]
    states = read_table(built, "features", day)
    encoded = encode_states(v3, states, market=None)
    lib = ScenarioLibrary(
        v3, load_library(), pl.DataFrame(schema=PRICE_SCHEMA), max_staleness_days=7
    )
    (part,) = join_scenarios(
        v3, lib, states["as_of_date"], encoded.z_stab, weights=v3.joint.weights
    )
    z = v3.stab.standardised(states.select(FEATURE_NAMES))
    context, _ = market_context(states, z, market=None)
    assert v3.stab.risk is not None
    r = risk_score(z - context, v3.stab.risk)
    fragility = part.result.fragility
    order = np.argsort(r, kind="stable")
    assert (np.diff(fragility[order]) >= -1e-9).all()
    assert fragility[order[-1]] > fragility[order[0]] + 0.05


def _z_row(names: list[str], **values: float) -> np.ndarray:
    """A row of z-scores: the named features' values, every other feature at the centre."""
    row = np.zeros(len(names))
    for name, value in values.items():
        row[names.index(name)] = value
    return row


VOL_LEVELS = (
    "vol_21",
    "vol_63",
    "vol_252",
    "downside_vol_63",
    "vol_21_lag21",
    "vol_21_lag42",
    "parkinson_vol_21",
)


def test_the_default_fragility_ranks_a_calm_markets_date_by_risk() -> None:
    """A real calm market sits far below the generator's volatility (an index fund's year
    at -4 robust z, just after a sell-off: a month's volatility up on its year, volume
    surging), with its funds from a short-bond fund (every volatility at the clip) to an
    emerging-market fund. On such a date fragility must still rank the states as r does.
    v3's scenario branch (0.5) broke it: the riskier a state, the harder its softmax
    leaned to the calm scenarios, and fragility fell as r rose (a real month-end of 2006
    did so). v4's fit keeps only the weight that ranks such a market by r."""
    from stabfrag.model.encode import join_scenarios
    from stabfrag.model.encoder import risk_score

    names = list(FEATURE_NAMES)
    vol = dict.fromkeys(VOL_LEVELS, -2.5)
    market = _z_row(
        names,
        **{**vol, "vol_252": -4.0, "vol_ratio_21_252": 1.5, "volume_z_21_252": 2.5},
        worst_ret_63=1.4,
        es95_63=1.5,
        dd_252=1.0,
        max_dd_63=0.9,
        days_since_peak_252=-1.9,
        log_dollar_vol_63=1.6,
    )
    calmest = _z_row(
        names, **dict.fromkeys(VOL_LEVELS, -6.0), worst_ret_63=2.1, es95_63=2.3, max_dd_63=1.6
    )
    riskiest = _z_row(
        names,
        **dict.fromkeys(VOL_LEVELS, 1.0),
        vol_ratio_21_252=1.5,
        worst_ret_63=-0.7,
        es95_63=-1.1,
        max_dd_63=-1.7,
        volume_z_21_252=2.9,
    )
    t = np.linspace(0.0, 1.0, 21)[:, None]
    z = (1 - t) * calmest + t * riskiest
    context = np.tile(market, (len(z), 1))
    models = load_models()
    assert models.stab.risk is not None
    z_stab, _ = models.stab.encode_z(z, context)
    library = ScenarioLibrary(
        models, load_library(), pl.DataFrame(schema=PRICE_SCHEMA), max_staleness_days=7
    )
    as_of = pl.Series("as_of_date", [dt.date(2006, 6, 30)] * len(z))
    (part,) = join_scenarios(models, library, as_of, z_stab, weights=models.joint.weights)
    r = risk_score(z - context, models.stab.risk)
    assert (np.diff(r) > 0).all()
    fragility = part.result.fragility
    assert (np.diff(fragility) > 0).all(), np.round(fragility, 4)


def test_v1_and_v2_load_side_by_side() -> None:
    v1, v2 = load_models(None, JOINT_V1), load_models(None, JOINT_V2)
    assert not v1.stab.context and v2.stab.context
    assert v1.stab.projection.shape == (len(FEATURE_NAMES), 384)
    assert v2.stab.projection.shape == (2 * len(FEATURE_NAMES) + 1, 384)
    assert np.array_equal(v2.stab.projection, v2.scen.projection)
    assert load_models().model_id == DEFAULT_JOINT
    assert {v1.joint.sha256, v2.joint.sha256} == {
        v1.hashes()[JOINT_V1],
        v2.hashes()[JOINT_V2],
    }


def _scenario_space(models):
    lib = ScenarioLibrary(
        models, load_library(), pl.DataFrame(schema=PRICE_SCHEMA), max_staleness_days=7
    )
    return lib.space(lib.key(dt.date.max))


def _fragility_and_nearest(models, z: np.ndarray, context: np.ndarray) -> tuple[float, str, str]:
    space = _scenario_space(models)
    v, _ = models.stab.encode_z(z, context if models.stab.context else None)
    sims = normalise(v.astype(np.float64))[0] @ space.vectors.T
    best = int(sims[0].argmax())
    table = space.table
    return float(sims[0, space.high].max()), table["shock_type"][best], table["severity"][best]


def _crash_z(models) -> np.ndarray:
    space = _scenario_space(models)
    ids = space.table["scenario_id"].to_list()
    z = models.scen.standardised(space.features.select(FEATURE_NAMES))
    return z[ids.index("SCN_EQ_CRASH_HIGH")][None, :]


@pytest.mark.parametrize("model", [JOINT_V2, JOINT_V3])
def test_a_mild_move_toward_a_crash_is_not_the_crash(model: str) -> None:
    """Cosine alone ignores intensity: v2's (and v3's) constant and market block keep a
    wobble in a crash's direction away from the crash; v1 gives it the crash's fragility."""
    v2 = load_models(None, model)
    crash = _crash_z(v2)
    wobble = 0.15 * crash
    calm_market = np.zeros_like(crash)
    f_crash, type_crash, sev_crash = _fragility_and_nearest(v2, crash, crash)
    f_own, _, sev_own = _fragility_and_nearest(v2, wobble, calm_market)
    f_market, _, sev_market = _fragility_and_nearest(v2, wobble, wobble)
    # (A v3 state keeps an own block a scenario does not have: the crash itself is at 0.9.)
    assert (type_crash, sev_crash) == ("EQUITY_CRASH", "HIGH")
    assert f_crash > (0.99 if model == JOINT_V2 else 0.9)
    # One name wobbles in a calm market: far from the crash, nearest calm or a LOW shock.
    assert sev_own in ("NONE", "LOW") and f_own < f_crash - 0.3
    assert sev_market == "LOW" and f_market < f_crash - 0.1  # the market wobbles: a LOW shock
    v1 = load_models(None, JOINT_V1)
    crash1 = _crash_z(v1)
    f1_crash, _, _ = _fragility_and_nearest(v1, crash1, crash1)
    f1_wobble, _, sev1 = _fragility_and_nearest(v1, 0.15 * crash1, calm_market)
    assert f1_wobble == pytest.approx(f1_crash, abs=1e-6) and sev1 == "HIGH"


def _null_pull(models, full: pl.DataFrame) -> tuple[float, float]:
    """(largest mean similarity gained toward any scenario, share keeping the nearest
    scenario) when ten long-window features are null."""
    young = full.with_columns(pl.lit(None, pl.Float64).alias(n) for n in LONG_WINDOWS)
    z_full = models.stab.standardised(full.select(FEATURE_NAMES))
    z_young = models.stab.standardised(young.select(FEATURE_NAMES))
    context = market_context(full, z_full, market=None)[0] if models.stab.context else None
    space = _scenario_space(models)
    sims = [
        normalise(models.stab.encode_z(z, context)[0].astype(np.float64))[0] @ space.vectors.T
        for z in (z_full, z_young)
    ]
    pull = sims[1].mean(axis=0) - sims[0].mean(axis=0)
    return float(pull.max()), float((sims[1].argmax(axis=1) == sims[0].argmax(axis=1)).mean())


@pytest.mark.parametrize("model", [JOINT_V2, JOINT_V3])
def test_missing_history_does_not_pull_toward_a_scenario(
    built: Path, market: Market, model: str
) -> None:
    """States with ten null features stay near their full-history twins: v2 (and v3) fill a
    null with its conditional mean; v1's zeros send them toward other scenarios."""
    full = read_table(built, "features", event_dates(market, "CRASH")[0]).filter(
        pl.col("n_obs") > LOOKBACK_ROWS  # a whole look-back window
    )
    pull2, same2 = _null_pull(load_models(None, model), full)
    pull1, same1 = _null_pull(load_models(None, JOINT_V1), full)
    assert pull2 <= 0.15 and pull2 < 0.6 * pull1, (pull2, pull1)
    assert same2 >= 0.4 and same2 > 3 * same1, (same2, same1)


@pytest.mark.parametrize("model", [JOINT_V2, JOINT_V3])
def test_nothing_changes_for_a_fixed_market_reference(
    market: Market, tmp_path: Path, model: str
) -> None:
    """With --market, adding other entities changes no state's vector (a subset book holding
    the reference gives the same bytes); with the universe as the reference, the context
    (and so the vectors) follows the universe."""
    reference = market.entities.filter(pl.col("entity_type") == "MARKET")["entity_id"][0]
    day = event_dates(market, "CRASH")[0]
    everyone = tmp_path / "all.parquet"
    market.prices.write_parquet(everyone)
    ids = market.entities["entity_id"].to_list()
    kept = [reference, *[e for e in ids if e != reference][:60]]
    fewer = tmp_path / "fewer.parquet"
    market.prices.filter(pl.col("entity_id").is_in(kept)).write_parquet(fewer)

    said: dict[str, str | None] = {}

    def vectors(prices: Path, market_id: str | None, out: str) -> pl.DataFrame:
        config = BuildConfig(prices=prices, out=tmp_path / out, market=market_id, model=model)
        said[out] = loop.run(config, [day]).as_dict().get("context_reference")
        rows = read_table(tmp_path / out, "joint_embeddings", day)
        return rows.filter(pl.col("kind") == "entity").select("entity_id", "vector", "fragility")

    a = vectors(everyone, reference, "a")
    b = vectors(fewer, reference, "b")
    common = a.join(b, on="entity_id", suffix="_b")
    assert common.height >= 50
    assert common.select((pl.col("vector") == pl.col("vector_b")).all()).item()
    assert common.select((pl.col("fragility") == pl.col("fragility_b")).all()).item()
    u = vectors(everyone, None, "u").join(vectors(fewer, None, "v"), on="entity_id", suffix="_b")
    assert not u.select((pl.col("vector") == pl.col("vector_b")).all()).item()
    # The run summary says what the context was: the named market, or the input's universe.
    assert said["a"] == f"the market entity {reference}"
    assert said["u"] is not None and said["u"].startswith("the input's universe")
    assert (
        "context_reference"
        not in loop.run(
            BuildConfig(prices=fewer, out=tmp_path / "v1", model=JOINT_V1), [day]
        ).as_dict()
    )


def test_the_v4_fit_is_deterministic_and_reads_generated_markets_only(tmp_path: Path) -> None:
    """v4 extends the folder's v3 (here the shipped one, copied in): the same seeds give
    the same artefacts, the block's directions are orthogonal to v3's, and the choice
    keeps v3's validation figures."""
    from stabfrag.fitting.v4 import CALM_TO_HIGH, KEEP_AUC, fit_v4
    from stabfrag.model.joint import JOINT_V4

    tiny = {
        "train": (Universe(5, 60, 1500), Universe(6, 60, 1500)),
        "validation": Universe(7, 60, 1500),
        "weights": (1.0,),
    }
    records = [fit_v4(tmp_path / name, **tiny) for name in ("a", "b")]  # type: ignore[arg-type]
    a, b = tmp_path / "a", tmp_path / "b"
    _same_artefacts(a, b, ("num-stab-core-v3", "num-scenario-core-v3", JOINT_V3, JOINT_V4))
    v4, v3 = load_models(a, JOINT_V4), load_models(a, JOINT_V3)
    assert v4.joint.factors is not None
    assert np.abs(v4.joint.factors.basis @ v3.stab.projection.T).max() < 1e-10
    record = records[0]
    assert record["training_data"]["real_labels"] == "none"
    chosen = record["hyperparameters"]
    figures = record["fitted_figures"]
    # The bound: the lowest within ACCURACY_TIE of the best validation date accuracy.
    from stabfrag.fitting.v4 import ACCURACY_TIE, SATURATIONS

    by_bound = figures["validation_date_types_by_saturation"]
    assert set(by_bound) == {str(b) for b in SATURATIONS}
    near = [b for b in SATURATIONS if by_bound[str(b)] >= max(by_bound.values()) - ACCURACY_TIE]
    assert chosen["saturation"] == min(near) == v4.joint.factors.saturation
    kept = figures[f"validation_w{chosen['weight']}_calm_q{chosen['calm_quantile']}"]
    base = figures["validation_v3"]
    assert kept["state_auc"] >= base["state_auc"] - KEEP_AUC
    assert kept["calm_to_high"] <= max(base["calm_to_high"], CALM_TO_HIGH)
    # The scenario branch keeps every validation date ranked as r, in a real calm market.
    from stabfrag.fitting.v3 import FOLLOWS_R
    from stabfrag.fitting.v4 import CALM_SHIFT, SCENARIO_WEIGHTS

    scen = chosen["scenario_weight"]
    assert scen in SCENARIO_WEIGHTS and v4.joint.weights["scen"] == scen
    for shift in (0.0, CALM_SHIFT):
        assert figures["follows_r"][f"scen_{scen}_shift_{shift}"] >= FOLLOWS_R
    heavier = [w for w in SCENARIO_WEIGHTS if w > scen]
    assert all(
        min(figures["follows_r"][f"scen_{w}_shift_{s}"] for s in (0.0, CALM_SHIFT)) < FOLLOWS_R
        for w in heavier
    )
    # An episode's context: the market's only where it names more of the validation
    # panel's own episodes and keeps the rest; the manifest says which.
    from stabfrag.fitting.v4 import ACCURACY_TIE
    from stabfrag.model.scenario_space import EPISODE_CONTEXT, MARKET_CONTEXT, OWN_CONTEXT

    own, market = (figures["validation_episodes"][m] for m in (OWN_CONTEXT, MARKET_CONTEXT))
    keeps = (
        market["episode_macro_top1"] > own["episode_macro_top1"]
        and market["shock_type_macro"] >= own["shock_type_macro"] - ACCURACY_TIE
        and market["state_auc"] >= own["state_auc"] - KEEP_AUC
        and market["calm_to_high"] <= max(own["calm_to_high"], CALM_TO_HIGH)
    )
    assert chosen[EPISODE_CONTEXT] == (MARKET_CONTEXT if keeps else OWN_CONTEXT)
    assert v4.joint.manifest[EPISODE_CONTEXT] == chosen[EPISODE_CONTEXT]


def test_the_v4_choice_takes_the_calmest_of_near_ties() -> None:
    """Accuracies within ACCURACY_TIE of the best are a tie (one validation seed cannot
    tell them apart): the higher calm quantile, then the lighter weight, wins; a clear
    lead still does."""
    from stabfrag.fitting.v4 import choose

    def trials(acc: dict[tuple[float, float], float]) -> dict:
        return {c: {"shock_type_macro": a} for c, a in acc.items()}

    near = trials({(2.0, 0.5): 0.7277, (2.0, 0.9): 0.7270, (3.0, 0.9): 0.7275, (1.0, 0.9): 0.66})
    assert choose(list(near), near) == (2.0, 0.9)
    clear = trials({(2.0, 0.5): 0.74, (2.0, 0.9): 0.72, (1.0, 0.9): 0.66})
    assert choose(list(clear), clear) == (2.0, 0.5)
    assert choose([(1.0, 0.9), (2.0, 0.5)], clear) == (2.0, 0.5)  # only what keeps v3's
