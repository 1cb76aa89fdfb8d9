"""384-dim vectors per entity and date: profile vectors (joint-profile-core-v1) and the text
vectors a profile can be built from (text-profile-v1). Read and checked the same way."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from stabfrag.errors import InputError, first_line
from stabfrag.schema import DIM, ENTITY, VECTOR_TYPE

PROFILES_MANIFEST = "_manifest.json"  # what `stabfrag profiles build` writes beside them


def read_profiles(path: Path, *, stab_basis: str | None = None) -> pl.DataFrame:
    """Profile vectors: key_column, key, as_of_date, vector (Array[f32, 384], unit norm).

    Vectors that `stabfrag profiles build` made name the stab encoder whose basis they are
    in; with `stab_basis`, vectors made in another basis are refused (their cosines with
    states and scenarios would mean nothing). Vectors from elsewhere carry no such record.
    """
    manifest = path.parent / PROFILES_MANIFEST
    if stab_basis is not None and manifest.is_file():
        try:
            made_in = json.loads(manifest.read_text()).get("stab_basis")
        except (json.JSONDecodeError, OSError, AttributeError):
            made_in = None
        if made_in is not None and made_in != stab_basis:
            raise InputError(
                path,
                f"profiles made in the basis of {made_in}; this joint model's stab encoder is "
                f"{stab_basis}: rebuild them with --model-dir/--model of this build",
            )
    return read_vectors(path, "profile")


def read_vectors(path: Path, what: str) -> pl.DataFrame:
    """Return key_column, key, as_of_date, vector (Array[f32, 384], unit norm).

    The key is entity_id, or issuer_id when the file has no entity_id. The vector may be a
    list, a fixed-size list or 1,536 little-endian bytes. A vector of another length, with
    a NaN or all zeros is a one-line error naming the file and `what` it holds.
    """
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(path, f"cannot read {what} vectors: {first_line(exc)}") from None
    key = ENTITY if ENTITY in frame.columns else "issuer_id"
    missing = [c for c in (key, "as_of_date", "vector") if c not in frame.columns]
    if missing:
        raise InputError(path, f"missing {what} column(s): {', '.join(missing)}")
    vec = frame["vector"]
    if vec.dtype == pl.Binary:
        if (vec.bin.size() != DIM * 4).any():
            raise InputError(path, f"a {what} vector is not {DIM * 4} bytes")
        raw = b"".join(vec.to_list())  # one join of the column, then one frombuffer
        arr = np.frombuffer(raw, dtype="<f4").reshape(-1, DIM)
    elif isinstance(vec.dtype, pl.List | pl.Array):
        if isinstance(vec.dtype, pl.Array) and vec.dtype.size != DIM:
            raise InputError(path, f"a {what} vector does not have {DIM} values")
        lengths = vec.list.len() if isinstance(vec.dtype, pl.List) else None
        if lengths is not None and (lengths != DIM).any():
            raise InputError(path, f"a {what} vector does not have {DIM} values")
        arr = np.asarray(vec.cast(pl.Array(pl.Float64, DIM)).to_numpy(), dtype=np.float64)
    else:
        raise InputError(path, f"column vector has type {vec.dtype}, expected a list or bytes")
    if arr.shape[1:] != (DIM,) or not np.isfinite(arr).all():
        raise InputError(path, f"{what} vectors must be {DIM} finite values (NaN or inf found)")
    norm = np.linalg.norm(arr, axis=1)
    if (norm <= 0).any():
        raise InputError(path, f"a {what} vector is all zeros")
    unit = (arr / norm[:, None]).astype(np.float32)
    return pl.DataFrame(
        {
            "key_column": key,
            "key": frame[key].cast(pl.String),
            "as_of_date": frame["as_of_date"].cast(pl.Date),
            "vector": pl.Series(unit, dtype=VECTOR_TYPE),
        }
    ).sort("key", "as_of_date")
