"""Historical episodes' market contexts kept between runs, in the output folder.

A daily build is a run of one date, and each historical episode's context (a model that
asks: engine.episodes) is read on the episode's last day: without a declared market, every
entity's state that day, the cost of a whole build of a date per episode window. The
contexts are kept under the digest of the very rows read, with everything else they
depend on, so a later run over the same rows (the next day's build of a file that grew
by a day) takes them instead of computing them, and a run over revised rows computes
them again. A kept file that cannot be read as one is computed again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import polars as pl

from stabfrag import __version__
from stabfrag.atomic import write_atomic
from stabfrag.config import BuildConfig
from stabfrag.features.registry import FEATURE_NAMES
from stabfrag.ingest.prices import ROW
from stabfrag.model.bundle import Models

LOG = logging.getLogger("stabfrag.episodes")

# Under the output folder; safe to delete (the next run computes what it needs again).
CACHE_DIR = Path(".cache") / "episode_contexts"

Contexts = dict[dt.date, np.ndarray | None]  # a day -> its context's z-scores (None: none)


def cache_file(
    folder: Path, config: BuildConfig, models: Models, ends: list[dt.date], raw: pl.DataFrame
) -> Path:
    """Where the contexts of `ends`, computed from the rows `raw`, are kept: named by a
    digest of the rows (their values and file order) and of all else the contexts depend
    on. A row's place in the file decides only which of two duplicates is kept, so the
    digest holds the rows' order, not their positions: a file that grew by a day, its new
    rows among the old ones, keeps its digest."""
    ordered = (raw if raw[ROW].is_sorted() else raw.sort(ROW)).drop(ROW)
    # 64 bits a row: a changed row goes unseen once in 2^64.
    rows = ordered.hash_rows(seed=0).to_numpy()
    payload = {
        "rows": hashlib.sha256(rows.tobytes()).hexdigest(),
        "schema": [(name, str(dtype)) for name, dtype in ordered.schema.items()],
        "ends": [d.isoformat() for d in ends],
        "encoder": models.scen.sha256,
        "market": config.market,
        "bad_tick": config.bad_tick,
        "max_staleness_days": config.max_staleness_days,
        # A row digest is stable within one Polars version only.
        "versions": [__version__, pl.__version__],
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return folder / f"{key}.json"


def kept(path: Path, ends: list[dt.date]) -> Contexts | None:
    """The contexts kept at `path`, or None when there are none (or not one of each day,
    of the right width and finite: a damaged file is computed again)."""
    try:
        days = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(days, dict) or sorted(days) != [d.isoformat() for d in ends]:
        return None
    out: Contexts = {}
    for day in ends:  # a few episode ends
        value = days[day.isoformat()]
        if value is None:
            out[day] = None
            continue
        try:
            row = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if row.shape != (len(FEATURE_NAMES),) or not np.isfinite(row).all():
            return None
        out[day] = row
    return out


def keep(path: Path, contexts: Contexts) -> None:
    """Keep `contexts` at `path` (written aside and renamed). A folder that takes no file
    (read-only) keeps nothing: the next run computes them again."""
    text = json.dumps(
        {d.isoformat(): None if v is None else v.tolist() for d, v in contexts.items()}
    )
    try:
        write_atomic(path, lambda tmp: tmp.write_text(text))
    except OSError as exc:
        LOG.debug("episode contexts not kept in %s: %s", path.parent, exc.strerror)
