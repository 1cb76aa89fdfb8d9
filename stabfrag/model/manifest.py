"""Artefact files: a manifest.json and a projection.npy per model, checked by sha256."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from stabfrag.atomic import write_atomic
from stabfrag.errors import ModelError


def content_hash(manifest: dict[str, Any]) -> str:
    """sha256 of what the artefact computes: its manifest (calibration, weights, tau and the
    projection's sha256) without the creation time, so a recalibration changes it and a
    re-run of the same calibration does not."""
    payload = {k: v for k, v in manifest.items() if k != "created"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as fh:
        np.save(fh, array, allow_pickle=False)


def write_manifest(target: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_atomic(target / "manifest.json", lambda p: p.write_text(text))


def write_artefact(
    folder: Path, model_id: str, projection: np.ndarray, manifest: dict[str, Any]
) -> Path:
    """The one write recipe of every artefact: `folder/model_id/projection.npy`, then its
    manifest.json (with model_id, the projection's sha256 and the creation time), each
    written to a temporary name and renamed, the manifest last."""
    target = folder / model_id
    target.mkdir(parents=True, exist_ok=True)
    path = write_atomic(target / "projection.npy", lambda p: save_npy(p, projection))
    write_manifest(
        target,
        {
            "model_id": model_id,
            **manifest,
            "projection_sha256": sha256_file(path),
            "created": created_now(),
        },
    )
    return target


def created_now() -> str:
    """The manifest's creation time (left out of the content hash)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def read_verified(folder: Path, model_id: str) -> tuple[dict[str, Any], np.ndarray]:
    target = folder / model_id
    manifest_path = target / "manifest.json"
    proj_path = target / "projection.npy"
    if not manifest_path.exists() or not proj_path.exists():
        raise ModelError(f"{target}: no artefact (manifest.json and projection.npy expected)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{manifest_path}: not valid JSON ({exc.msg})") from None
    if manifest.get("model_id") != model_id:
        raise ModelError(
            f"{manifest_path}: model_id is {manifest.get('model_id')!r}, not {model_id}"
        )
    actual = sha256_file(proj_path)
    if actual != manifest.get("projection_sha256"):
        raise ModelError(
            f"{proj_path}: sha256 {actual[:12]}... does not match the manifest; refused"
        )
    projection = np.load(proj_path, allow_pickle=False)
    return manifest, projection
