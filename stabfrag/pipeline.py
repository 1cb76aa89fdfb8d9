"""build / backfill: read a window, validate, features at every (entity, as-of), encode, join.

A build for one date is a backfill of one date: the same function makes both, so their
vectors are the same bytes. Work goes in chunks of as-of dates, each read with its own
look-back, so memory follows the chunk, not the history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import polars as pl

from stabfrag import __version__
from stabfrag.config import BuildConfig
from stabfrag.encoders import load_models
from stabfrag.features import FEATURE_NAMES, compute_features
from stabfrag.inputs import (
    read_entities,
    validate,
)
from stabfrag.joint import joint_states
from stabfrag.profiles import profiles_at, read_profiles
from stabfrag.scenario_space import ScenarioLibrary, scenario_rows, scenario_scope
from stabfrag.scenarios import (
    load_library,
)
from stabfrag.schema import DATE, ENTITY, JOINT_MODEL_ID, JOINT_TYPE, VECTOR_TYPE
from stabfrag.sinks import Partition, Sink
from stabfrag.states import fingerprint, read_window, state_requests
from stabfrag.summary import RunSummary


def _entity_scope(has_profile: pl.Expr | pl.Series) -> pl.Expr:
    """entity_scope JSON of SPEC §6, keys in the documented order."""
    source = (
        pl.when(has_profile)
        .then(pl.lit("stab+scenarios+profile"))
        .otherwise(pl.lit("stab+scenarios"))
    )
    return pl.struct(
        pl.col("entity_type"),
        pl.col(ENTITY),
        pl.col("region"),
        source.alias("source"),
        pl.struct(
            pl.col("window_start").cast(pl.String).alias("start_date"),
            pl.col(DATE).cast(pl.String).alias("end_date"),
        ).alias("stab_window"),
    ).struct.json_encode()


ProgressFn = Callable[[int, int, int], None]  # (dates done, dates total, states so far)


class Builder:
    """One run: loads models, library, metadata once; then builds chunks of dates."""

    def __init__(self, config: BuildConfig) -> None:
        self.config = config
        self.summary = RunSummary(out=str(config.out))
        with self.summary.timings.stage("load"):
            self.models = load_models(config.model_dir)
            self.weights = {**self.models.joint.weights, **(config.weights or {})}
            self.library = load_library(config.scenarios)
            self.scenarios = ScenarioLibrary(config, self.models, self.library)
            self.profiles = read_profiles(config.profiles) if config.profiles else None
            self.fingerprint = fingerprint(config, self.library, self.weights)
        self.summary.models = self.models.hashes()
        self.summary.weights = self.weights

    def manifest(self, as_of: dt.date, counts: dict[str, int]) -> dict[str, Any]:
        return {
            "as_of_date": as_of.isoformat(),
            "input_fingerprint": self.fingerprint,
            "models": self.models.hashes(),
            "weights": self.weights,
            "tau": self.models.joint.tau,
            "counts": counts,
            "stabfrag_version": __version__,
        }

    def is_complete(self, manifest: dict[str, Any] | None) -> bool:
        return bool(
            manifest
            and manifest.get("input_fingerprint") == self.fingerprint
            and manifest.get("models") == self.models.hashes()
        )

    def run(
        self,
        dates: list[dt.date],
        sinks: list[Sink],
        *,
        skip: set[dt.date] | None = None,
        progress: ProgressFn | None = None,
    ) -> RunSummary:
        """Build every date of `dates` (ascending) except `skip`, chunk by chunk."""
        dates = sorted(set(dates))
        skip = skip or set()
        previous = {d: (dates[i - 1] if i else None) for i, d in enumerate(dates)}
        todo = [d for d in dates if d not in skip]
        self.summary.skipped_dates = [d for d in dates if d in skip]
        done = 0
        for chunk in _chunks(todo, self.config.chunk_days):  # bounded memory per chunk
            partitions = self.build_chunk(chunk, previous, first_of_run=chunk[0] == dates[0])
            with self.summary.timings.stage("write"):
                for sink in sinks:
                    with sink:
                        for part in partitions:  # one file set per as-of date
                            sink.write(part)
                        sink.commit()
            done += len(chunk)
            self.summary.as_of_dates.extend(chunk)
            if progress:
                progress(done, len(todo), self.summary.states_out)
        return self.summary

    def build_chunk(
        self,
        chunk: list[dt.date],
        previous: dict[dt.date, dt.date | None],
        *,
        first_of_run: bool,
    ) -> list[Partition]:
        cfg, t = self.config, self.summary.timings
        with t.stage("read"):
            raw = read_window(
                cfg.prices, first=chunk[0], last=chunk[-1], include_undated=first_of_run
            )
        with t.stage("validate"):
            checked = validate(raw, min_prices=0)
            requests, ent_rejects = state_requests(
                checked.prices, chunk, max_staleness_days=cfg.max_staleness_days
            )
        with t.stage("features"):
            rows = requests["_pos"].unique().sort().to_numpy()
            feats = compute_features(checked.prices, rows=rows).drop(ENTITY, DATE)
            states = requests.join(feats, on="_pos", how="left").sort("as_of_date", ENTITY)
            meta = read_entities(cfg.entities, states[ENTITY])
            states = states.join(meta, on=ENTITY, how="left").rename({"last_date": DATE})
        with t.stage("encode"):
            z_stab, ok = self.models.stab.encode(states.select(FEATURE_NAMES))
        degenerate = states.filter(~pl.Series(ok)).select(
            "as_of_date",
            ENTITY,
            DATE,
            pl.lit("degenerate_state").alias("reason"),
            pl.lit("every feature sits at its calibration centre: no direction").alias("detail"),
        )
        states, z_stab = states.filter(pl.Series(ok)), z_stab[ok]
        with t.stage("joint"):
            joint_rows, scen_rows = self._joint(states, z_stab, chunk)
        return self._partitions(
            chunk,
            previous,
            checked,
            states,
            joint_rows,
            scen_rows,
            pl.concat([ent_rejects, degenerate]),
            first_of_run=first_of_run,
        )

    def _joint(
        self, states: pl.DataFrame, z_stab: np.ndarray, chunk: list[dt.date]
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        z_prof, has_prof = profiles_at(states, self.profiles)
        keys = {d: self.scenarios.key(d) for d in chunk}
        versions = sorted(set(keys.values()))
        version_of = {d: versions.index(k) for d, k in keys.items()}
        state_keys = (
            states["as_of_date"].replace_strict(version_of, return_dtype=pl.Int64).to_numpy()
        )
        entity_frames, scenario_frames = [], []
        # One joint computation per version of the scenario library (a historical episode
        # switching to its real path), not per date.
        for i, key in enumerate(versions):
            space = self.scenarios.space(key)
            sel = state_keys == i
            res = joint_states(
                z_stab[sel],
                space.vectors.astype(np.float64),
                space.high,
                weights=self.weights,
                tau=self.models.joint.tau,
                z_prof=z_prof[sel],
                has_prof=has_prof[sel],
            )
            ids = space.table["scenario_id"].to_numpy()
            sub = states.filter(pl.Series(sel))
            entity_frames.append(
                sub.select(
                    pl.lit(JOINT_TYPE).alias("joint_type"),
                    "as_of_date",
                    _entity_scope(pl.Series(has_prof[sel])).alias("entity_scope"),
                    pl.lit(JOINT_MODEL_ID).alias("model_id"),
                    pl.Series("vector", res.vectors, dtype=VECTOR_TYPE),
                    pl.lit("entity").alias("kind"),
                    ENTITY,
                    pl.lit(None, pl.String).alias("scenario_id"),
                    pl.Series("nearest_scenario_id", ids[res.nearest]),
                    pl.Series("nearest_scenario_similarity", res.nearest_similarity),
                    pl.Series("fragility", res.fragility),
                    "features_null",
                )
            )
            scenario_frames.append(
                scenario_rows(
                    space,
                    scenario_scope(space.table, self.library),
                    [d for d, k in keys.items() if k == key],
                ).with_columns(pl.lit(i).alias("_key"))
            )
        return pl.concat(entity_frames), pl.concat(scenario_frames)

    def _partitions(
        self,
        chunk: list[dt.date],
        previous: dict[dt.date, dt.date | None],
        checked: Any,
        states: pl.DataFrame,
        joint_rows: pl.DataFrame,
        scen_rows: pl.DataFrame,
        ent_rejects: pl.DataFrame,
        *,
        first_of_run: bool,
    ) -> list[Partition]:
        """Split the chunk's tables into one partition per as-of date."""
        # A row reject belongs to the first as-of date on or after its date; rows before the
        # previous as-of date of the run were reported with it (the first takes its look-back).
        row_rej = checked.rejects.filter(
            ~pl.col("reason").is_in(["no_valid_rows", "insufficient_history", "stale"])
        )
        lower = previous[chunk[0]]
        # Rows dated after the run's previous as-of date are this chunk's own; the earlier
        # ones are look-back, read (and counted) by the chunk before.
        own = pl.col(DATE) > lower if lower is not None and not first_of_run else pl.lit(True)
        row_rej = row_rej.filter(own)
        bounds = pl.DataFrame({"as_of_date": chunk}, schema={"as_of_date": pl.Date})
        dated = (
            row_rej.filter(pl.col(DATE).is_not_null())
            .sort(DATE)
            .join_asof(
                bounds.with_columns(pl.col("as_of_date").alias("_b")).sort("_b"),
                left_on=DATE,
                right_on="_b",
                strategy="forward",
            )
            .drop("_b")
        )
        undated = row_rej.filter(pl.col(DATE).is_null()).with_columns(
            pl.lit(chunk[0]).alias("as_of_date")
        )
        rejects = pl.concat(
            [
                dated.select("as_of_date", ENTITY, DATE, "reason", "detail"),
                undated.select("as_of_date", ENTITY, DATE, "reason", "detail"),
                ent_rejects.select("as_of_date", ENTITY, DATE, "reason", "detail"),
            ],
        )
        s = self.summary
        s.rows_read += checked.prices.filter(own).height + row_rej.height
        s.range_dropped += checked.range_dropped_dates.to_frame().filter(own).height
        s.add(
            s.rows_rejected,
            _counts(
                rejects.filter(
                    ~pl.col("reason").is_in(["insufficient_history", "stale", "degenerate_state"])
                )
            ),
        )
        s.add(s.entities_rejected, _counts(ent_rejects))
        feature_cols = [
            "as_of_date",
            ENTITY,
            DATE,
            "window_start",
            "n_obs",
            *FEATURE_NAMES,
            "features_null",
        ]
        by_date = {
            "joint": _split(joint_rows.sort("as_of_date", ENTITY)),
            "scen": _split(scen_rows.sort("as_of_date", "_order").drop("_order", "_key")),
            "features": _split(states.select(feature_cols)),
            "rejects": _split(
                rejects.sort("as_of_date", "reason", ENTITY, DATE, "detail", nulls_last=True)
            ),
        }
        out = []
        for d in chunk:  # one partition per as-of date: files, not rows
            entity_part = by_date["joint"].get(d, pl.DataFrame())
            scen_part = by_date["scen"].get(d)
            rej = by_date["rejects"].get(d, pl.DataFrame())
            n_states = entity_part.height
            n_ent_rej = (
                rej.filter(
                    pl.col("reason").is_in(["insufficient_history", "stale", "degenerate_state"])
                ).height
                if rej.height
                else 0
            )
            key = self.scenarios.key(d)
            space = self.scenarios.space(key)
            counts = {
                "states": n_states,
                "scenarios": scen_part.height if scen_part is not None else 0,
                "entities_in": n_states + n_ent_rej,
                "entities_rejected": n_ent_rej,
                "rejects": rej.height,
            }
            s.states_out += n_states
            s.entities_in += counts["entities_in"]
            s.scenario_rows += counts["scenarios"]
            tables = {
                "joint_embeddings": pl.concat(
                    [f for f in (entity_part, scen_part) if f is not None and f.height],
                    how="diagonal_relaxed",
                )
                if (entity_part.height or scen_part is not None)
                else pl.DataFrame(),
                "features": by_date["features"].get(d, pl.DataFrame()),
                "rejects": rej,
                "scenarios": space.table.with_columns(pl.lit(d).alias("as_of_date")),
            }
            out.append(Partition(as_of=d, tables=tables, manifest=self.manifest(d, counts)))
        return out


def _counts(frame: pl.DataFrame) -> dict[str, int]:
    if frame.height == 0:
        return {}
    g = frame.group_by("reason").len()
    return dict(zip(g["reason"].to_list(), g["len"].to_list(), strict=True))


def _split(frame: pl.DataFrame) -> dict[dt.date, pl.DataFrame]:
    if frame.height == 0:
        return {}
    return {
        key[0]: part
        for key, part in frame.partition_by("as_of_date", as_dict=True, maintain_order=True).items()
    }


def _chunks(dates: list[dt.date], span_days: int) -> Iterator[list[dt.date]]:
    """Consecutive runs of dates whose calendar span stays within span_days."""
    chunk: list[dt.date] = []
    for d in dates:  # grouping the as-of list (a few hundred dates), not data rows
        if chunk and (d - chunk[0]).days >= span_days:
            yield chunk
            chunk = []
        chunk.append(d)
    if chunk:
        yield chunk


def run(
    config: BuildConfig,
    dates: list[dt.date],
    *,
    progress: ProgressFn | None = None,
    extra_sinks: list[Sink] | None = None,
) -> RunSummary:
    """Build `dates` into the Parquet dataset (and any extra sinks), then refresh the views."""
    from stabfrag.sinks.duckdb import write_views
    from stabfrag.sinks.parquet import ParquetSink, read_manifest

    builder = Builder(config)
    skip: set[dt.date] = set()
    if config.resume:
        skip = {d for d in dates if builder.is_complete(read_manifest(config.out, d))}
    sinks: list[Sink] = [ParquetSink(config.out), *(extra_sinks or [])]
    if config.pg_dsn:
        from stabfrag.sinks.postgres import PostgresSink

        sinks.append(PostgresSink(config.pg_dsn, config.pg_table, staging=config.pg_staging))
    summary = builder.run(dates, sinks, skip=skip, progress=progress)
    with summary.timings.stage("views"):
        write_views(config.out)
    return summary
