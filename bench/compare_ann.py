"""The candidate ANN libraries on the same states and the same filtered queries as the
project's index (bench/index_bench.py --compare): build rate, bytes a state, recall@10
against exact search, and query time. Needs faiss-cpu and usearch (pip install usearch);
the vectors are held in memory, so use a history of a million states or so."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from common import emit

from stabfrag.index.search import AnalogIndex, last_eligible

K, DEPTH, NPROBE = 10, 100, 64


def compare(index: AnalogIndex, picked: list[Any], exact_n: int) -> None:
    vectors = index._vectors(np.arange(index.manifest["states"], dtype=np.int64))
    truth = []
    for vector, day, entity in picked[:exact_n]:
        cut, own = index.eligible(last_eligible(day, 180), entity)
        truth.append((vector, cut, own, _ids(index, index.scan(vector, cut, own, K))))
    for name, make, search in (
        ("faiss IVF-PQ48 (flat quantizer), ID-range filter", _faiss_pq, _faiss_search),
        ("usearch HNSW int8 (M=16), filter after search", _usearch, _usearch_search),
    ):
        t0 = time.perf_counter()
        built, nbytes = make(index, vectors)
        build_s = time.perf_counter() - t0
        times, recalls = [], []
        for vector, cut, own, want in truth:
            t0 = time.perf_counter()
            ids = search(built, vector, cut, own)
            exact = vectors[ids].astype(np.float64) @ vector.astype(np.float64)
            got = ids[np.lexsort((ids, -exact))[:K]]
            times.append(time.perf_counter() - t0)
            recalls.append(len(set(got.tolist()) & set(want.tolist())) / max(len(want), 1))
        emit(
            {
                "library": name,
                "build_states_per_s": len(vectors) / build_s,
                "bytes_per_state": nbytes / len(vectors),
                "recall_at_10": float(np.mean(recalls)),
                "p50_ms": 1e3 * float(np.median(times)),
                "p99_ms": 1e3 * float(np.percentile(times, 99)),
            }
        )


def _ids(index: AnalogIndex, frame: Any) -> np.ndarray:
    """The ids of a result frame's (as_of_date, entity_id) rows."""
    keys = index.keys.with_row_index("id")
    joined = frame.join(keys, on=["as_of_date", "entity_id"], how="left")
    return joined["id"].to_numpy().astype(np.int64)


def _faiss_pq(index: AnalogIndex, vectors: np.ndarray) -> tuple[Any, int]:
    import faiss

    lists = index.manifest["params"]["lists"]
    built = faiss.index_factory(vectors.shape[1], f"IVF{lists},PQ48", faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(len(vectors), min(len(vectors), 48 * lists), False)
    built.train(vectors[np.sort(sample)])
    built.add(vectors)
    return built, len(faiss.serialize_index(built))


def _faiss_search(built: Any, vector: np.ndarray, cut: int, own: np.ndarray) -> np.ndarray:
    import faiss

    selector = faiss.IDSelectorAnd(
        faiss.IDSelectorRange(0, cut), faiss.IDSelectorNot(faiss.IDSelectorBatch(own))
    )
    params = faiss.SearchParametersIVF(sel=selector, nprobe=NPROBE)
    _, found = built.search(vector.reshape(1, -1), DEPTH, params=params)
    return found[0][found[0] >= 0]


def _usearch(index: AnalogIndex, vectors: np.ndarray) -> tuple[Any, int]:
    from usearch.index import Index

    built = Index(ndim=vectors.shape[1], metric="ip", dtype="i8", connectivity=16)
    built.add(np.arange(len(vectors)), vectors, threads=2)
    return built, int(built.memory_usage)


def _usearch_search(built: Any, vector: np.ndarray, cut: int, own: np.ndarray) -> np.ndarray:
    """usearch's Python search takes no filter: ask for more until DEPTH pass it."""
    count, banned = DEPTH, set(own.tolist())
    while True:
        keys = built.search(vector, count).keys
        keep = np.array([k for k in keys if k < cut and k not in banned], dtype=np.int64)
        if len(keep) >= DEPTH or count >= len(built):
            return keep
        count *= 4
