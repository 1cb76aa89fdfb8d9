"""The analog index's folder: its manifest, its monthly segments, and whether it still
matches the partitions it was built from.

OUT/analog_index/ holds
- manifest.json: the model, the index parameters, the training sample, and per segment
  (a calendar month of entity states) its first id, its count and each date's stamp;
- projection.npy: the few directions the vectors span (384 x d), what the lists index;
- trained.faiss: the trained, empty index (the list centres and their graph), kept so that
  `index update` and `index build` file a state under the same list with the same code;
- lists.faiss: the trained index with every state added;
- segments/YYYY-MM.npy (float32 vectors, the exact re-ranking reads them) and
  segments/YYYY-MM.parquet (as_of_date, entity_id, fragility, nearest_scenario_id).

A state's id is its position in (as_of_date, entity_id) order over the whole history, so
"known before date D" is the id range [0, n) and a later date appends ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stabfrag.errors import ConfigError, QueryError
from stabfrag.sinks.dataset import partitions, read_manifest

INDEX_DIR = "analog_index"
MANIFEST = "manifest.json"
TRAINED = "trained.faiss"
LISTS = "lists.faiss"
PROJECTION = "projection.npy"
SEGMENTS = "segments"
FORMAT = 2


def index_dir(out: Path) -> Path:
    return out / INDEX_DIR


def month_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def by_month(days: list[dt.date]) -> dict[str, list[dt.date]]:
    """Dates grouped by calendar month (a segment's span), months and dates ascending."""
    months: dict[str, list[dt.date]] = {}
    for day in sorted(days):
        months.setdefault(month_of(day), []).append(day)
    return months


def import_faiss() -> Any:
    """faiss, or a one-line error naming the extra that brings it."""
    try:
        import faiss
    except ImportError:
        raise ConfigError(
            "the analog index needs faiss: pip install 'stabfrag[index]' (queries without "
            "it search exactly)"
        ) from None
    return faiss


def date_stamp(manifest: dict[str, Any]) -> str:
    """What an indexed date is checked against: the joint_embeddings files its partition
    manifest vouches for (their checksums), and the model that made them. A rewritten
    partition, or one built by another model, has another stamp."""
    checks = manifest.get("file_checks")
    if isinstance(checks, dict):
        parts = [
            f"{name}:{check.get('sha256')}"
            for name, check in sorted(checks.items())
            if name.startswith("joint_embeddings/")
        ]
    else:  # a manifest from before files were checked: its own text stands for the date
        parts = [json.dumps(manifest, sort_keys=True)]
    parts.append(str(manifest.get("models", {}).get(str(manifest.get("model")), "")))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Built:
    """The partitions as they are now: each date's stamp, and the one model that made them."""

    stamps: dict[dt.date, str]
    states: dict[dt.date, int]  # entity states a date holds, as its manifest counts them
    model: str
    model_hash: str


def built(out: Path) -> Built:
    """Read every partition manifest once. An index holds one model's vectors: a folder
    built with --allow-mixed-models is refused, naming the models."""
    stamps: dict[dt.date, str] = {}
    states: dict[dt.date, int] = {}
    models: dict[tuple[str, str], int] = {}
    for day in partitions(out):
        manifest = read_manifest(out, day) or {}
        stamps[day] = date_stamp(manifest)
        states[day] = int(manifest.get("counts", {}).get("states", 0))
        model = str(manifest.get("model"))
        key = (model, str(manifest.get("models", {}).get(model, "")))
        models[key] = models.get(key, 0) + 1
    if not stamps:
        raise QueryError(f"{out}: nothing built there (no joint_embeddings partition)")
    if len(models) > 1:
        held = ", ".join(f"{m} ({n} dates)" for (m, _), n in sorted(models.items()))
        raise ConfigError(
            f"{out} holds dates of several models ({held}): an analog index compares one "
            "model's vectors; rebuild the folder with one model"
        )
    ((model, model_hash),) = models
    return Built(stamps, states, model, model_hash)


def read_index_manifest(out: Path) -> dict[str, Any] | None:
    """The index's manifest, or None when there is no index (or one this code cannot read)."""
    path = index_dir(out) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, OSError):
        return None
    return manifest if manifest.get("format") == FORMAT else None


def damaged(out: Path, manifest: dict[str, Any]) -> str | None:
    """The first index file that is missing or not the size its manifest records."""
    folder = index_dir(out)
    for name, size in sorted(manifest.get("file_bytes", {}).items()):
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} is {path.stat().st_size:,} bytes, the manifest says {size:,}"
    return None


def indexed_stamps(manifest: dict[str, Any]) -> dict[dt.date, str]:
    return {
        dt.date.fromisoformat(day): stamp
        for segment in manifest["segments"]
        for day, stamp in segment["dates"].items()
    }


def first_change(indexed: dict[dt.date, str], now: dict[dt.date, str]) -> dt.date | None:
    """The earliest date whose state set differs between the index and the partitions (a
    date built since, rewritten, or removed), or None when they agree."""
    changed = [d for d in indexed.keys() | now.keys() if indexed.get(d) != now.get(d)]
    return min(changed) if changed else None


def staleness(out: Path, manifest: dict[str, Any], now: Built) -> tuple[dt.date | None, str]:
    """(valid_before, why): the index answers a query whose newest eligible date is before
    `valid_before` (None: every date) exactly as it was built; why says what changed."""
    if (manifest["model"], manifest["model_hash"]) != (now.model, now.model_hash):
        return dt.date.min, f"it holds {manifest['model']} vectors; the folder holds {now.model}"
    indexed = indexed_stamps(manifest)
    change = first_change(indexed, now.stamps)
    if change is None:
        return None, ""
    added = sum(1 for d in now.stamps if d not in indexed)
    removed = sum(1 for d in indexed if d not in now.stamps)
    rewritten = sum(1 for d in indexed if d in now.stamps and indexed[d] != now.stamps[d])
    what = [
        f"{n} date(s) {verb}"
        for n, verb in ((added, "built since"), (rewritten, "rewritten"), (removed, "removed"))
        if n
    ]
    return change, f"{', '.join(what)} (from {change})"
