"""`stabfrag index build` and `index update`: the analog index of a folder's entity states.

The index is faiss IVF (chosen by measurement, bench/README.md): spherical k-means lists,
an HNSW graph over the list centres so that filing a state costs a few hundred distances
instead of one per list, and fp16 codes of the few directions the joint vectors span (48
for the default model), 99 bytes a state with its id. A build trains once; later builds
and updates reuse the training (unless --retrain or the model changed), so an update
files every state exactly as a full build would: same ids, same lists, same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.atomic import folder_lock, fsync_file
from stabfrag.engine.summary import Timings
from stabfrag.errors import QueryError
from stabfrag.index import store
from stabfrag.index.status import retrain_advice
from stabfrag.sinks.dataset import read_tables
from stabfrag.threads import pool

DIM = 384
HNSW_LINKS = 16  # neighbours per list centre in the graph that files states
KMEANS_ITERATIONS = 12
ENERGY_LOST = 1e-6  # share of the vectors' second moment the index's directions may drop
NPROBE = 256  # lists searched first (bench/README.md: recall against time)
DEPTH = 100  # candidates re-ranked exactly on the float32 vectors
TRAIN_PER_LIST = 48  # k-means sample: faiss asks for at least 39 points a list
TRAIN_SEED = 20240101
KEY_COLUMNS = ["as_of_date", "entity_id", "fragility", "nearest_scenario_id"]

Progress = Callable[[str], None]


def lists_for(states: int) -> int:
    """About the square root of the history, a power of two (16 to 16,384), and never
    more lists than the sample can train."""
    want = 2 ** round(math.log2(max(math.sqrt(states), 1.0)))
    return int(min(max(want, 16), 16_384, max(states // TRAIN_PER_LIST, 1)))


def build_index(
    out: Path,
    *,
    update: bool,
    retrain: bool = False,
    lists: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write OUT/analog_index: every month's segment when building, only the months from
    the first changed date on when updating. The new index replaces the old one whole."""
    if not out.is_dir():  # before the writer's lock, which lives in the folder
        raise QueryError(f"{out}: nothing built yet")
    faiss = store.import_faiss()
    say = progress or (lambda _line: None)
    timings = Timings()
    with folder_lock(out):
        now = store.built(out)
        if not any(now.states.values()):
            raise QueryError(f"{out}: no entity states to index")
        old = store.read_index_manifest(out)
        reuse = _reusable(out, old, now, retrain=retrain, lists=lists)
        incremental = update and reuse
        change = _change(old, now) if incremental else min(now.stamps)
        tmp = out / f".{store.INDEX_DIR}.{uuid.uuid4().hex}.tmp"
        (tmp / store.SEGMENTS).mkdir(parents=True)
        try:
            kept = _keep_segments(out, tmp, old, change) if incremental else []
            with timings.stage("train"):
                if reuse:
                    for name in (store.TRAINED, store.PROJECTION):
                        os.link(store.index_dir(out) / name, tmp / name)
                    trained = _manifest_training(old)
                else:
                    trained = _train(faiss, out, tmp, now, lists, say)
            with timings.stage("segments_and_lists"):
                new = _fill(faiss, out, tmp, now, kept, change, incremental=incremental, say=say)
            manifest = _manifest(faiss, now, trained, kept + new)
            manifest["file_bytes"] = {
                str(p.relative_to(tmp)): p.stat().st_size
                for p in sorted(tmp.rglob("*"))
                if p.is_file()
            }
            (tmp / store.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            fsync_file(tmp / store.MANIFEST)
            _swap(out, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        **_summary(manifest, new, retrained=not reuse, update=incremental),
        **retrain_advice(manifest),
    }
    if update and not incremental:
        summary["index"] = "built whole (no index, or one of another model or damaged)"
    return {**summary, "timings_s": {k: round(v, 3) for k, v in timings.seconds.items()}}


def _reusable(
    out: Path, old: dict[str, Any] | None, now: store.Built, *, retrain: bool, lists: int | None
) -> bool:
    """Whether the old index's training (and, for an update, its segments) can serve."""
    if old is None or retrain or store.damaged(out, old):
        return False
    if (old["model"], old["model_hash"]) != (now.model, now.model_hash):
        return False
    if lists is not None and lists != old["params"]["lists"]:
        return False
    folder = store.index_dir(out)
    return (folder / store.TRAINED).is_file() and (folder / store.LISTS).is_file()


def _change(old: dict[str, Any] | None, now: store.Built) -> dt.date | None:
    assert old is not None
    return store.first_change(store.indexed_stamps(old), now.stamps)


def _keep_segments(
    out: Path, tmp: Path, old: dict[str, Any] | None, change: dt.date | None
) -> list[dict[str, Any]]:
    """The old segments of the months wholly before the first change, linked, not copied."""
    assert old is not None
    keep = [s for s in old["segments"] if change is None or s["month"] < store.month_of(change)]
    for segment in keep:
        for suffix in (".npy", ".parquet"):
            name = f"{store.SEGMENTS}/{segment['month']}{suffix}"
            os.link(store.index_dir(out) / name, tmp / name)
    return keep


def _fill(
    faiss: Any,
    out: Path,
    tmp: Path,
    now: store.Built,
    kept: list[dict[str, Any]],
    change: dt.date | None,
    *,
    incremental: bool,
    say: Progress,
) -> list[dict[str, Any]]:
    """lists.faiss and the segments from the change's month on: the old lists without
    the ids of those months (an update), or the trained index (a build), plus each new
    month's states as it is written. Both file the same states in the same order."""
    first_id = sum(s["states"] for s in kept)
    if incremental and change is None:  # nothing changed: the old lists serve as they are
        os.link(store.index_dir(out) / store.LISTS, tmp / store.LISTS)
        return []
    projection = np.load(tmp / store.PROJECTION)
    if incremental:
        index = faiss.read_index(str(store.index_dir(out) / store.LISTS))
        index.remove_ids(faiss.IDSelectorRange(first_id, 2**62))
    else:
        index = faiss.read_index(str(tmp / store.TRAINED))
    assert change is not None
    first_month = store.month_of(change)
    months = list(
        store.by_month([d for d in now.stamps if store.month_of(d) >= first_month]).items()
    )
    segments = []
    # the next month is read while this one is filed (both release the GIL)
    ahead = pool().submit(read_month, out, months[0][1])
    for at, (month, days) in enumerate(months):
        rows = ahead.result()
        if at + 1 < len(months):
            ahead = pool().submit(read_month, out, months[at + 1][1])
        vectors = _write_month(tmp, month, rows)
        count = len(vectors)
        ids = np.arange(first_id, first_id + count, dtype=np.int64)
        index.add_with_ids(project(vectors, projection), ids)
        stamps = {d.isoformat(): now.stamps[d] for d in days}
        segments.append({"month": month, "first_id": first_id, "states": count, "dates": stamps})
        first_id += count
        say(f"segment {month}: {count:,} states")
    faiss.write_index(index, str(tmp / store.LISTS))
    return segments


def read_month(out: Path, days: list[dt.date]) -> pl.DataFrame:
    """The entity states of `days` (a month's), keys and vectors, in (as_of_date,
    entity_id) order: what a segment holds, and what exact search reads."""
    rows = (
        read_tables(out, "joint_embeddings", days, columns=["kind", *KEY_COLUMNS, "vector"])
        .filter(pl.col("kind") == "entity")
        .drop("kind")
    )
    keys = rows.select("as_of_date", "entity_id")
    if not keys.equals(keys.sort("as_of_date", "entity_id")):  # (partitions are sorted)
        rows = rows.sort("as_of_date", "entity_id")
    return rows


def _write_month(tmp: Path, month: str, rows: pl.DataFrame) -> np.ndarray:
    """The vectors to segments/MONTH.npy (returned), the keys to segments/MONTH.parquet."""
    vectors = np.ascontiguousarray(rows["vector"].to_numpy(), dtype=np.float32)
    vectors = vectors.reshape(len(rows), DIM)
    np.save(tmp / store.SEGMENTS / f"{month}.npy", vectors)
    rows.drop("vector").write_parquet(tmp / store.SEGMENTS / f"{month}.parquet")
    return vectors


def segment_vectors(folder: Path, month: str) -> np.ndarray:
    """A segment's vectors, memory-mapped: only the rows read are paged in."""
    return np.load(folder / store.SEGMENTS / f"{month}.npy", mmap_mode="r")


def _train(
    faiss: Any, out: Path, tmp: Path, now: store.Built, lists: int | None, say: Progress
) -> dict[str, Any]:
    """Spherical k-means on a seeded sample of states (whole dates drawn at random from
    the history, then states drawn from them), an HNSW graph over the centres (built on
    one thread: the same graph every time), in the directions the sample spans."""
    total = sum(now.states.values())
    lists = lists or lists_for(total)
    size = min(total, TRAIN_PER_LIST * lists)
    rng = np.random.default_rng(TRAIN_SEED)
    days = sorted(now.stamps)
    order = rng.permutation(len(days))
    counts = np.cumsum([now.states[days[i]] for i in order])
    picked = sorted(days[i] for i in order[: int(np.searchsorted(counts, size)) + 1])
    rows = read_tables(out, "joint_embeddings", picked, columns=["kind", "vector"])
    vectors = rows.filter(pl.col("kind") == "entity")["vector"].to_numpy()
    chosen = np.sort(rng.choice(len(vectors), size=min(size, len(vectors)), replace=False))
    projection = _projection(np.asarray(vectors[chosen], dtype=np.float32))
    np.save(tmp / store.PROJECTION, projection)
    sample = project(np.asarray(vectors[chosen], dtype=np.float32), projection)
    dims = projection.shape[1]
    say(
        f"training {lists:,} lists in {dims} directions on {len(sample):,} states "
        f"of {len(picked):,} dates"
    )
    kmeans = faiss.Clustering(dims, lists)
    kmeans.spherical, kmeans.seed, kmeans.niter = True, TRAIN_SEED % (2**31), KMEANS_ITERATIONS
    kmeans.max_points_per_centroid = TRAIN_PER_LIST
    kmeans.train(sample, faiss.IndexFlatIP(dims))
    centres = faiss.vector_to_array(kmeans.centroids).reshape(lists, dims)
    quantizer = faiss.IndexHNSWFlat(dims, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        quantizer.add(centres)
    finally:
        faiss.omp_set_num_threads(threads)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dims, lists, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    index.train(sample)
    faiss.write_index(index, str(tmp / store.TRAINED))
    return {
        "lists": lists,
        "dims": dims,
        "sample": len(sample),
        "sample_dates": len(picked),
        "of_states": total,
        "seed": TRAIN_SEED,
    }


def _projection(sample: np.ndarray) -> np.ndarray:
    """The fewest leading directions of the sample's second moment that keep all but
    ENERGY_LOST of it (384 x d, float32). The joint vectors span few directions (a
    linear map of a few dozen features: 48 for the default model), so inner products
    of projected vectors are the full ones to float precision, and filing and scanning
    cost d numbers a state, not 384. The exact re-rank still reads all 384."""
    moment = sample.astype(np.float64).T @ sample.astype(np.float64)
    values, vectors = np.linalg.eigh(moment)
    values, vectors = values[::-1], vectors[:, ::-1]
    kept = np.cumsum(values) / max(float(values.sum()), 1e-300)
    dims = int(np.searchsorted(kept, 1.0 - ENERGY_LOST)) + 1
    dims = min(DIM, max(8, -(-dims // 8) * 8))  # a multiple of 8: SIMD-friendly codes
    basis = vectors[:, :dims]
    basis *= np.where(basis[np.abs(basis).argmax(axis=0), range(dims)] < 0, -1.0, 1.0)
    return np.ascontiguousarray(basis, dtype=np.float32)


def project(vectors: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """Vectors in the index's directions (what its lists file and search)."""
    return np.ascontiguousarray(np.asarray(vectors, dtype=np.float32) @ projection)


def gather(
    segments: list[dict[str, Any]], ids: np.ndarray, load: Callable[[str], np.ndarray]
) -> np.ndarray:
    """The float32 vectors of `ids` (ascending or not) from the segments, each segment's
    vectors got by `load(month)`."""
    firsts = np.array([s["first_id"] for s in segments], dtype=np.int64)
    where = np.searchsorted(firsts, ids, side="right") - 1
    result = np.empty((len(ids), DIM), dtype=np.float32)
    for seg in np.unique(where):
        mask = where == seg
        segment = segments[int(seg)]
        rows = ids[mask] - segment["first_id"]
        result[mask] = load(segment["month"])[rows]
    return result


def _manifest_training(old: dict[str, Any] | None) -> dict[str, Any]:
    assert old is not None
    return dict(old["trained"])


def _manifest(
    faiss: Any, now: store.Built, trained: dict[str, Any], segments: list[dict[str, Any]]
) -> dict[str, Any]:
    days = sorted(d for s in segments for d in s["dates"])
    return {
        "format": store.FORMAT,
        "library": f"faiss {faiss.__version__}",
        "kind": (
            f"{trained['dims']} directions, IVF{trained['lists']}_HNSW{HNSW_LINKS},SQfp16 "
            "(inner product), exact re-rank"
        ),
        "model": now.model,
        "model_hash": now.model_hash,
        "params": {"lists": trained["lists"], "nprobe": NPROBE, "depth": DEPTH},
        "trained": trained,
        "states": sum(s["states"] for s in segments),
        "dates": len(days),
        "first_date": days[0],
        "last_date": days[-1],
        "segments": segments,
    }


def _swap(out: Path, tmp: Path) -> None:
    """Put the new index in place of the old: a reader sees the old one, none (and searches
    exactly), or the new one, never a mixture."""
    final = store.index_dir(out)
    aside = out / f".{store.INDEX_DIR}.{uuid.uuid4().hex}.old"
    if final.exists():
        os.replace(final, aside)
    os.replace(tmp, final)
    shutil.rmtree(aside, ignore_errors=True)


def _summary(
    manifest: dict[str, Any], new: list[dict[str, Any]], *, retrained: bool, update: bool
) -> dict[str, Any]:
    return {
        "index": "updated" if update else "built",
        "states": manifest["states"],
        "dates": manifest["dates"],
        "first_date": manifest["first_date"],
        "last_date": manifest["last_date"],
        "states_filed": sum(s["states"] for s in new),
        "segments_written": len(new),
        "trained": "now" if retrained else "reused",
        "lists": manifest["params"]["lists"],
        "model": manifest["model"],
    }
