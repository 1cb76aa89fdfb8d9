"""The optional profile branch (joint-profile-core-v1): read and check the vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from stabfrag.errors import InputError
from stabfrag.schema import DIM, ENTITY, VECTOR_TYPE


def read_profiles(path: Path) -> pl.DataFrame:
    """Return key_column, key, as_of_date, vector (Array[f32, 384], unit norm).

    The key is entity_id, or issuer_id when the file has no entity_id. The vector may be a
    list, a fixed-size list or 1,536 little-endian bytes.
    """
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(path, f"cannot read profiles: {str(exc).splitlines()[0]}") from None
    key = ENTITY if ENTITY in frame.columns else "issuer_id"
    missing = [c for c in (key, "as_of_date", "vector") if c not in frame.columns]
    if missing:
        raise InputError(path, f"missing profile column(s): {', '.join(missing)}")
    vec = frame["vector"]
    if vec.dtype == pl.Binary:
        if (vec.bin.size() != DIM * 4).any():
            raise InputError(path, f"a profile vector is not {DIM * 4} bytes")
        raw = b"".join(vec.to_list())  # one join of the column, then one frombuffer
        arr = np.frombuffer(raw, dtype="<f4").reshape(-1, DIM)
    elif isinstance(vec.dtype, pl.List | pl.Array):
        lengths = vec.list.len() if isinstance(vec.dtype, pl.List) else None
        if lengths is not None and (lengths != DIM).any():
            raise InputError(path, f"a profile vector does not have {DIM} values")
        arr = np.asarray(vec.cast(pl.Array(pl.Float64, DIM)).to_numpy(), dtype=np.float64)
    else:
        raise InputError(path, f"column vector has type {vec.dtype}, expected a list or bytes")
    if arr.shape[1:] != (DIM,) or not np.isfinite(arr).all():
        raise InputError(path, f"profile vectors must be {DIM} finite values")
    norm = np.linalg.norm(arr, axis=1)
    if (norm <= 0).any():
        raise InputError(path, "a profile vector is all zeros")
    unit = (arr / norm[:, None]).astype(np.float32)
    return pl.DataFrame(
        {
            "key_column": key,
            "key": frame[key].cast(pl.String),
            "as_of_date": frame["as_of_date"].cast(pl.Date),
            "vector": pl.Series(unit, dtype=VECTOR_TYPE),
        }
    ).sort("key", "as_of_date")
