"""How much "close to a known bad region" means: validity figures on labelled periods.

The same labelled states are embedded several ways (the built joint space, the other joint
models of its model folder re-encoded from the stored features, vol_21 alone and the design
note's original encoder) and each is scored: state AUC, analog precision@10, calm->HIGH,
shock-type accuracy, per episode, episode match and the within-date cross-section. The
scenario library and models are the ones the build used, as its manifest records.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.analysis.labels import label_states, read_labels
from stabfrag.analysis.metrics import (
    MAX_QUERIES,
    analogs,
    cross_section,
    episode_match,
    episode_queries,
    figures_of,
    library_separation,
    macro,
    per_episode,
    pooled,
    shock_type_by_type,
    shock_types_named,
    why_unavailable,
)
from stabfrag.analysis.plots import plot_folder, roc_curve, write_plots
from stabfrag.analysis.spaces import (
    EXPOSURE_WINDOW,
    VOL_BASELINES,
    Space,
    built_space,
    exposure,
    model_space,
    original_space,
    vol_space,
)
from stabfrag.analysis.who import DEFINITION, forward_drawdown, rank_ic, who_figures
from stabfrag.config import BAD_TICK_MULTIPLE
from stabfrag.errors import InputError, LabelError
from stabfrag.ingest.files import file_hash
from stabfrag.ingest.profiles import read_profiles
from stabfrag.model.bundle import JOINT_PREFIX, Models, joint_models, load_models, shipped_models
from stabfrag.model.linalg import normalise
from stabfrag.scenarios.library import Scenario, load_library
from stabfrag.schema import DATE, DIM, ENTITY
from stabfrag.sinks.dataset import (
    TABLE_SCHEMAS,
    part_files,
    partition_dir,
    partitions,
    read_manifest,
    read_table,
    read_tables,
)


@dataclass(frozen=True)
class Built:
    """What evaluate reads of a built dataset: states, scenario rows, library and models."""

    states: pl.DataFrame  # entity rows of every date, with vol_21 and vol_63
    features: pl.DataFrame  # the feature table of every date
    scenario_table: pl.DataFrame  # the newest date's scenarios table
    scenario_vectors: np.ndarray  # the newest date's scenario rows (unit, float64)
    library: tuple[Scenario, ...]
    models: Models
    built_with: dict[str, Any]  # as the report says it ("shipped" for the packaged folder)
    model_dir: Path  # the folder the build's models were loaded from


def read_built(out: Path) -> Built:
    """Read every partition, and reload the scenario library and models the build used (its
    manifest names them; a build that named none used the shipped ones)."""
    dates = partitions(out)
    if not dates:
        raise InputError(out, "no joint_embeddings partitions")
    # Every column but the vectors: the states that fall in a labelled period take theirs
    # later (state_vectors), so the vectors of unlabelled dates are never held.
    light = [c for c in TABLE_SCHEMAS["joint_embeddings"].names() if c != "vector"]
    joint = read_tables(out, "joint_embeddings", dates, columns=light)
    feats = read_tables(out, "features", dates)
    manifest = read_manifest(out, dates[-1]) or {}
    model_dir, library_dir = manifest.get("model_dir"), manifest.get("scenario_library")
    joint_ids = [m for m in manifest.get("models", {}) if m.startswith(JOINT_PREFIX)]
    model = manifest.get("model") or (joint_ids[0] if joint_ids else None)
    models = load_models(None if model_dir is None else Path(model_dir), model)
    if manifest.get("models") and manifest["models"] != models.hashes():
        raise LabelError(
            f"{out}: the models at {model_dir or 'the shipped folder'} are not the ones the "
            "build used; rebuild, or restore them"
        )
    library = load_library(None if library_dir is None else Path(library_dir))
    table = read_table(out, "scenarios", dates[-1])
    if set(table["scenario_id"]) - {s.id for s in library}:
        raise LabelError(
            f"{out}: the scenario library at {library_dir or 'the shipped folder'} no longer "
            "holds every scenario the build used"
        )
    scen = read_table(out, "joint_embeddings", dates[-1]).filter(pl.col("kind") == "scenario")
    return Built(
        states=joint.filter(pl.col("kind") == "entity").join(
            feats.select("as_of_date", ENTITY, *VOL_BASELINES),
            on=["as_of_date", ENTITY],
            how="left",
        ),
        features=feats,
        scenario_table=table,
        scenario_vectors=normalise(scen["vector"].to_numpy().astype(np.float64))[0],
        library=library,
        models=models,
        model_dir=shipped_models() if model_dir is None else Path(model_dir),
        built_with={
            "scenario_library": library_dir or "shipped",
            "model_dir": model_dir or "shipped",
            "model": models.model_id,
            "market": manifest.get("market"),
            **({"factors": manifest["factors"]} if manifest.get("factors") else {}),
            "newest_date": dates[-1].isoformat(),
            "models": models.hashes(),
            # Only when not the default (what the reports have always said).
            **(
                {"bad_tick": manifest["bad_tick"]}
                if manifest.get("bad_tick", BAD_TICK_MULTIPLE) != BAD_TICK_MULTIPLE
                else {}
            ),
        },
    )


VECTOR_BLOCK = 52  # partitions read at a time for the stored vectors


def state_vectors(out: Path, tagged: pl.DataFrame) -> np.ndarray:
    """The stored joint vectors of the labelled states, in their order (float32): only the
    partitions of their dates are read, a block of dates at a time."""
    keys = tagged.select("as_of_date", ENTITY).with_row_index("_i")
    vectors = np.zeros((tagged.height, DIM), dtype=np.float32)
    dates = keys["as_of_date"].unique().sort().to_list()
    for lo in range(0, len(dates), VECTOR_BLOCK):  # bounded memory, not a loop over rows
        block = dates[lo : lo + VECTOR_BLOCK]
        rows = (
            pl.scan_parquet(
                [p for d in block for p in part_files(partition_dir(out, "joint_embeddings", d))]
            )
            .filter(pl.col("kind") == "entity")
            .select("as_of_date", ENTITY, "vector")
            .join(keys.lazy(), on=["as_of_date", ENTITY])
            .collect()
        )
        vectors[rows["_i"].to_numpy()] = rows["vector"].to_numpy()
    return vectors


def _take(space: Space, mask: np.ndarray) -> Space:
    return Space(
        space.name,
        space.states[mask],
        space.nearest[mask],
        space.fragility[mask],
        space.scenarios,
        space.table,
        space.distance,
    )


@dataclass(frozen=True)
class ProfileRun:
    """The profile branch's check: the built model re-encoded without profiles and with
    them at each weight, in the same run."""

    profiles: pl.DataFrame  # read_profiles
    weights: tuple[float, ...]

    def names(self, model: str) -> tuple[str, list[str]]:
        return f"{model} without profiles", [
            f"{model} + profiles (prof={w:g})" for w in self.weights
        ]


def rescorer(built: Built, tagged: pl.DataFrame, prices: Path | None) -> Callable[..., Space]:
    """model_space for `tagged`, as the build read its inputs: a joint model (and profile
    options) in, its space of those states out."""
    return partial(
        model_space,
        library=built.library,
        features=built.features,
        tagged=tagged,
        prices=prices,
        market=built.built_with["market"],
        factors=built.built_with.get("factors"),
        bad_tick=built.built_with.get("bad_tick", BAD_TICK_MULTIPLE),
        newest=dt.date.fromisoformat(built.built_with["newest_date"]),
    )


def _spaces(
    out: Path,
    built: Built,
    tagged: pl.DataFrame,
    prices: Path | None,
    compare: list[str],
    profile_run: ProfileRun | None = None,
) -> Iterator[Callable[[], Space]]:
    """The built joint space, the models to compare, the built model without and with
    profiles, and the baselines: each made when it is scored and dropped after, so one
    space's (states x 384) matrix is held at a time."""
    table = built.scenario_table
    yield lambda: built_space(
        f"{built.models.model_id} (built)",
        tagged,
        state_vectors(out, tagged),
        built.scenario_vectors,
        table,
    )
    model_dir = built.model_dir
    rescore = rescorer(built, tagged, prices)
    for model in compare:
        yield lambda model=model: rescore(load_models(model_dir, model))  # type: ignore[misc]
    if profile_run is not None:
        without, named = profile_run.names(built.models.model_id)
        for weight, name in [(0.0, without), *zip(profile_run.weights, named, strict=True)]:
            yield lambda weight=weight, name=name: rescore(  # type: ignore[misc]
                built.models,
                profiles=profile_run.profiles if weight > 0 else None,
                profile_weight=weight,
                name=name,
            )
    baseline = built.models.scen.baseline()
    for column in VOL_BASELINES:
        yield lambda column=column: vol_space(  # type: ignore[misc]
            tagged, table, baseline, built.library, column
        )
    if prices is not None:
        yield lambda: original_space(prices, tagged, table, baseline, built.library)


def _cross_section_sets(
    tagged: pl.DataFrame, corr: np.ndarray | None, min_corr: float
) -> tuple[np.ndarray, np.ndarray, str]:
    """(positive, eligible, definition) of the within-date ranking check."""
    stress = (tagged["label"] == "stress").to_numpy()
    if corr is not None:
        eligible = stress & ~tagged["own_label"].to_numpy() & np.isfinite(corr)
        return (
            np.nan_to_num(corr, nan=-1.0) >= min_corr,
            eligible,
            f"market-wide stress dates: exposed states (correlation >= {min_corr}) vs the rest",
        )
    own = tagged["own_label"].to_numpy() & stress
    dates = tagged["as_of_date"].to_numpy()
    eligible = np.isin(dates, np.unique(dates[own]))
    return own, eligible, "dates with entity-level stress: those entities vs the rest"


def _finite(value: Any) -> Any:
    """JSON-safe: NaN and inf become null, recursively."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _universe(
    tagged: pl.DataFrame, prices: Path | None, exposed_to: str | None, min_corr: float
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray]:
    """Which labelled states are scored: all, or with `exposed_to` those whose return
    correlation with it is at least `min_corr`. Returns the universe's description, the
    correlations (None without `exposed_to`) and the kept mask."""
    universe: dict[str, Any] = {"labelled_states": tagged.height}
    keep = np.ones(tagged.height, dtype=bool)
    if exposed_to is None or prices is None:
        return universe, None, keep
    corr = exposure(prices, tagged, exposed_to)
    keep = np.nan_to_num(corr, nan=-1.0) >= min_corr
    if not keep.any():
        raise LabelError(f"no labelled state has a correlation of {min_corr} with {exposed_to}")
    universe.update(
        exposed_to=exposed_to,
        min_corr=min_corr,
        window_days=EXPOSURE_WINDOW,
        kept=int(keep.sum()),
        no_full_window=int(np.isnan(corr).sum()),
    )
    return universe, corr, keep


def _analog_queries(stress: np.ndarray, seed: int) -> np.ndarray:
    """The stress states analog precision asks about: all, or MAX_QUERIES of them drawn
    by `seed`."""
    queries = np.flatnonzero(stress)
    if len(queries) > MAX_QUERIES:
        rng = np.random.default_rng(seed)
        queries = np.sort(rng.choice(queries, MAX_QUERIES, replace=False))
    return queries


@dataclass
class Scores:
    """Every space's figures, gathered one space at a time."""

    tagged: pl.DataFrame  # every labelled state
    keep: np.ndarray  # those scored (the exposed universe)
    queries: np.ndarray  # the analog queries, among the kept states
    cross_sets: tuple[np.ndarray, np.ndarray]  # (positive, eligible) of the cross-section
    keep_fragility: bool  # the profile branch's moves read every state's fragility
    figures: dict[str, Any] = field(default_factory=dict)
    episodes: dict[str, Any] = field(default_factory=dict)
    matches: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, Any] = field(default_factory=dict)
    library: dict[str, Any] = field(default_factory=dict)  # shock types told apart
    shock_types: dict[str, Any] = field(default_factory=dict)  # accuracy per labelled type
    types_named: dict[str, Any] = field(default_factory=dict)  # what each type is taken for
    calm_fragility: dict[str, np.ndarray] = field(default_factory=dict)
    lonely: int = 0  # the built space's analog queries without a neighbour far enough away

    def score(self, spaces: Iterator[Callable[[], Space]]) -> None:
        """Score each space (the built one first), one space's states at a time."""
        sub = self.tagged.filter(pl.Series(self.keep))
        stress = (sub["label"] == "stress").to_numpy()
        dates = self.tagged["as_of_date"].to_numpy()
        for number, make in enumerate(spaces):
            full = make()
            self.sections[full.name] = cross_section(full.fragility, dates, *self.cross_sets)
            if self.keep_fragility:
                self.calm_fragility[full.name] = full.fragility
            space = _take(full, self.keep)
            del full
            self.add(space, sub, stress, self.queries, built_space=number == 0)

    def add(
        self,
        space: Space,
        sub: pl.DataFrame,
        stress: np.ndarray,
        queries: np.ndarray,
        *,
        built_space: bool,
    ) -> None:
        """Score one space on the kept states `sub`."""
        # Every query any figure asks about, counted once per space.
        asked = np.concatenate([queries, *episode_queries(sub).values()])
        found = analogs(
            space.states, sub["as_of_date"].to_numpy(), stress, asked, distance=space.distance
        )
        if built_space:
            self.lonely = found.precision(np.unique(queries))[1]
        self.figures[space.name] = figures_of(
            space.states,
            space.nearest,
            space.fragility,
            sub,
            space.table,
            queries,
            distance=space.distance,
            found=found,
        )
        self.episodes[space.name] = per_episode(
            space.states, space.fragility, sub, distance=space.distance, found=found
        )
        match = episode_match(
            space.states, space.scenarios, space.table, sub, distance=space.distance
        )
        self.matches[space.name] = {"all": pooled(match), "macro": macro(match), **match}
        by_type = shock_type_by_type(space.nearest, sub, space.table)
        self.shock_types[space.name] = by_type
        self.types_named[space.name] = shock_types_named(space.nearest, sub, space.table)
        mean = float(np.mean(list(by_type.values()))) if by_type else float("nan")
        self.figures[space.name]["shock_type_macro"] = mean  # each type counts alike
        self.library[space.name] = library_separation(
            space.scenarios, space.table["shock_type"].to_numpy(), distance=space.distance
        )
        self.curves[space.name] = roc_curve(space.fragility, stress)


def _others(built: Built, compare: list[str] | None) -> list[str]:
    """The joint models compared with the built one: `compare`, or every other joint model
    of the build's model folder."""
    if compare is not None:
        return compare
    present = joint_models(built.model_dir)
    return [m for m in present if m != built.models.model_id]


def _profile_run(
    profiles: Path | None, weights: tuple[float, ...] | None, built: Built
) -> ProfileRun | None:
    """The profile branch to score at each weight (default: the model's, or, for a model
    that gives it none, PROFILE_WEIGHTS_TRIED), if asked."""
    if profiles is None:
        return None
    own = built.models.joint.weights["prof"]
    default = (own,) if own > 0 else PROFILE_WEIGHTS_TRIED
    # Profiles made in another stab basis mean nothing beside these states (as in a build).
    read = read_profiles(profiles, stab_basis=built.models.stab.model_id)
    return ProfileRun(read, tuple(weights or default))


# What evaluate --profiles scores for a model without a profile weight (v4): what the
# branch would do at a few weights.
PROFILE_WEIGHTS_TRIED = (0.05, 0.1, 0.25)


def _state_counts(
    sub: pl.DataFrame, stress: np.ndarray, queries: np.ndarray, lonely: int
) -> dict[str, int]:
    return {
        "stress": int(stress.sum()),
        "calm": int((~stress).sum()),
        "with_shock_type": int(sub["shock_type"].is_not_null().sum()),
        "analog_queries": int(len(queries)),
        "analog_queries_without_neighbours": lonely,
    }


def _notes(prices: Path | None) -> dict[str, str]:
    return {
        "episode_match": "each labelled episode's states against the historical "
        "scenarios of the build's newest date (retrospective)",
        "reference_paths": "from --prices, each historical episode in its market's context "
        "on its last day where the model asks for it"
        if prices
        else "synthetic stand-ins for the models compared, each episode its own context "
        "(no --prices)",
    }


def who_gets_hurt(
    built: Built, prices: Path, others: list[str], profile_run: ProfileRun | None = None
) -> tuple[dict[str, Any], dict[str, pl.DataFrame]]:
    """Who gets hurt, on every built state (labelled or not): the within-date rank IC of
    the built model's fragility, each compared model's, the built model's without and with
    profiles at each weight of `profile_run`, and the vol_21 and vol_63 baselines with the
    forward drawdown. Returns the figures and each score's IC by date."""
    everyone = built.features.select("as_of_date", ENTITY, DATE, "vol_21", "vol_63")
    fragility = everyone.join(
        built.states.select("as_of_date", ENTITY, "fragility"),
        on=["as_of_date", ENTITY],
        how="left",
        maintain_order="left",
    )["fragility"]
    scores = {f"{built.models.model_id} (built)": fragility.fill_null(np.nan).to_numpy()}
    rescore = rescorer(built, everyone, prices)
    for model in others:  # one model's states at a time
        scores[model] = rescore(load_models(built.model_dir, model)).fragility
    if profile_run is not None:  # the branch's weight is chosen by who it ranks, too
        without, named = profile_run.names(built.models.model_id)
        for weight, name in [(0.0, without), *zip(profile_run.weights, named, strict=True)]:
            scores[name] = rescore(
                built.models,
                profiles=profile_run.profiles if weight > 0 else None,
                profile_weight=weight,
            ).fragility
    for column in ("vol_21", "vol_63"):
        scores[f"{column} alone"] = everyone[column].fill_null(np.nan).to_numpy()
    fwd = forward_drawdown(prices, everyone)
    dates = everyone["as_of_date"].to_numpy()
    by_date = {name: rank_ic(score, fwd, dates) for name, score in scores.items()}
    vol21 = by_date["vol_21 alone"].select("as_of_date", pl.col("ic").alias("_vol21"))
    figures: dict[str, Any] = {"definition": DEFINITION}
    for name, ic in by_date.items():
        above = ic.join(vol21, on="as_of_date").filter(pl.col("ic").is_not_nan())
        figures[name] = {
            **who_figures(ic),
            "share_of_dates_above_vol_21": float(
                np.mean(above["ic"].to_numpy() > above["_vol21"].to_numpy())
            )
            if above.height
            else float("nan"),
        }
    return figures, by_date


def _labelled(
    out: Path, labels_path: Path, prices: Path | None = None
) -> tuple[Built, pl.DataFrame]:
    """The build, and its states that fall in a labelled period, with their labels (and
    `prices` checked to be the ones it read)."""
    if prices is not None:
        check_prices(out, prices)
    built = read_built(out)
    tagged = label_states(built.states, read_labels(labels_path))
    if tagged.height == 0:
        raise LabelError(f"{labels_path}: no built state falls in a labelled period")
    return built, tagged


def _who(
    result: dict[str, Any],
    built: Built,
    prices: Path | None,
    others: list[str],
    profile_run: ProfileRun | None = None,
) -> dict[str, pl.DataFrame]:
    """Add who gets hurt to `result` (or why it is unavailable); return each score's IC by
    date, for the plot."""
    if prices is None:
        result["unavailable"]["who"] = "needs --prices: the forward drawdowns are its outcome"
        return {}
    figures, ic_by_date = who_gets_hurt(built, prices, others, profile_run)
    result["who"] = _finite(figures)
    return ic_by_date


def check_prices(out: Path, prices: Path) -> None:
    """Refuse prices other than those the build read: exposures, reference paths and
    forward drawdowns from another market would be judged against this one's states."""
    dates = partitions(out)
    made = (read_manifest(out, dates[-1]) or {}).get("prices_hash") if dates else None
    if made is not None and file_hash(prices) != made:
        raise LabelError(
            f"--prices {prices} is not the prices file this build read (its bytes differ); "
            "pass the build's --prices"
        )


def evaluate(
    out: Path,
    labels_path: Path,
    *,
    prices: Path | None = None,
    exposed_to: str | None = None,
    min_corr: float = 0.5,
    seed: int = 0,
    compare: list[str] | None = None,
    plot: Path | None = None,
    profiles: Path | None = None,
    profile_weights: tuple[float, ...] | None = None,
) -> dict[str, Any]:
    """Every figure, for the built space, the models compared and the baselines.

    `exposed_to` keeps only the states whose entity moved with that market entity (return
    correlation at least `min_corr`): a label for a market's stress describes the
    instruments exposed to it, not the havens that rally in its crashes. `compare` names
    other joint models of the build's model folder (default: all). `plot` writes charts
    and an HTML page there. `prices` also gives who gets hurt (analysis.who). `profiles`
    scores the built model without and with the profile branch at each weight, and
    reports which entities it moves nearest the HIGH scenarios when calm."""
    _check_asked(exposed_to, prices, plot)
    built, tagged = _labelled(out, labels_path, prices)
    universe, corr, keep = _universe(tagged, prices, exposed_to, min_corr)
    positive, eligible, definition = _cross_section_sets(tagged, corr, min_corr)
    sub = tagged.filter(pl.Series(keep))
    stress = (sub["label"] == "stress").to_numpy()
    queries = _analog_queries(stress, seed)
    profile_run = _profile_run(profiles, profile_weights, built)
    scores = Scores(tagged, keep, queries, (positive, eligible), profile_run is not None)
    scores.score(_spaces(out, built, tagged, prices, _others(built, compare), profile_run))
    result = _finite(
        {
            "out": str(out),
            "labels": str(labels_path),
            "built_with": built.built_with,
            "universe": universe,
            "states": _state_counts(sub, stress, queries, scores.lonely),
            "unavailable": why_unavailable(sub, len(queries), scores.lonely),
            "analog_base_rate": float(stress.mean()),
            "figures": scores.figures,
            "per_episode": scores.episodes,
            "episode_match": scores.matches,
            "cross_section": {"definition": definition, **scores.sections},
            "library": scores.library,
            "shock_types": scores.shock_types,
            "shock_types_named": scores.types_named,
            "notes": _notes(prices),
            "warnings": _label_warnings(tagged, built),
        }
    )
    ic_by_date = _who(result, built, prices, _others(built, compare), profile_run)
    if profile_run is not None:
        moves = profile_moves(tagged, built.models.model_id, profile_run, scores.calm_fragility)
        result["profile_branch"] = _finite(moves)
    if plot is not None:
        result["plots"] = write_plots(plot, result, scores.curves, ic_by_date)
    return result


def _check_asked(exposed_to: str | None, prices: Path | None, plot: Path | None) -> None:
    """What the options ask that cannot be done, refused before any figure is computed."""
    if exposed_to is not None and prices is None:
        raise LabelError("--exposed-to needs --prices to measure each entity's exposure")
    if plot is not None:
        plot_folder(plot)


MOVES_SHOWN = 10


def _label_warnings(tagged: pl.DataFrame, built: Built) -> list[str]:
    """What the labels ask that this build cannot answer: scenario ids its library (of
    the newest date) does not hold, whose episodes then have no episode match."""
    named = set(tagged["scenario_id"].drop_nulls().to_list()) if "scenario_id" in tagged else set()
    missing = sorted(named - set(built.scenario_table["scenario_id"].to_list()))
    if not missing:
        return []
    return [
        f"the labels name scenario(s) the build's library does not hold: {', '.join(missing)}; "
        "their episodes have no episode match"
    ]


def profile_moves(
    tagged: pl.DataFrame, model: str, run: ProfileRun, fragility: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Per entity, how far the profile branch moves its calm states' fragility (the highest
    cosine to a HIGH scenario), at each weight: the entities it moves nearest the bad
    regions and furthest from them, and the mean move."""
    without, named = run.names(model)
    calm = (tagged["label"] == "calm").to_numpy()
    out: dict[str, Any] = {"weights": list(run.weights), "calm_states": int(calm.sum())}
    for weight, name in zip(run.weights, named, strict=True):
        moved = (
            pl.DataFrame(
                {
                    ENTITY: tagged[ENTITY],
                    "move": fragility[name] - fragility[without],
                }
            )
            .filter(pl.Series(calm))
            .group_by(ENTITY)
            .agg(pl.col("move").mean(), pl.len().alias("calm_states"))
            .sort("move", ENTITY, descending=[True, False])
        )
        out[f"prof={weight:g}"] = {
            "mean_move": float(np.mean(moved["move"].to_numpy())) if moved.height else math.nan,
            "nearest": moved.head(MOVES_SHOWN).to_dicts(),
            "furthest": moved.tail(MOVES_SHOWN).reverse().to_dicts(),
        }
    return out
