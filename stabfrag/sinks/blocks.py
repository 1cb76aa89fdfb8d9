"""Partitions built in entity blocks: each block staged on its own, the date sealed once.

A run split by entity (the Ray executor) writes each (chunk of dates x entity block) as a
separate task. A task stages its block's files in the date's `.blocks/` folder, its block
manifest last; readers never look there. When every block of a date is staged, the run
seals the date: the files move into the date's folder as `part-{block}.parquet` and the
date's `_manifest.json` is written last, as a one-process build writes it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from stabfrag.atomic import write_atomic
from stabfrag.sinks.dataset import TABLE_SCHEMAS, manifest_path, part_files, partition_dir

BLOCKS = ".blocks"
ONE_FILE_TABLES = ("scenarios",)  # written once per date, by the last block


def block_manifest_path(out: Path, as_of: dt.date, block: int) -> Path:
    return partition_dir(out, "joint_embeddings", as_of) / BLOCKS / f"_manifest-{block}.json"


def staged_block(out: Path, as_of: dt.date, block: int, expect: dict[str, Any]) -> dict | None:
    """The block manifest of a staged block, or None when the block must be (re)built: no
    manifest, one made from other inputs or other block bounds, or a file of it missing
    (moved by a seal that did not finish)."""
    path = block_manifest_path(out, as_of, block)
    try:
        manifest = dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError):
        return None
    if any(manifest.get(k) != v for k, v in expect.items()):
        return None
    if not all((out / rel).exists() for rel in manifest.get("files", [])):
        return None
    return manifest


def seal(out: Path, as_of: dt.date, blocks: list[dict[str, Any]], manifest: dict[str, Any]) -> None:
    """Move every staged block file of `as_of` into place, then write its manifest.

    The old manifest goes first, so no manifest vouches for a mix of files while they move;
    files of an earlier build with more blocks go before the new manifest lands.
    """
    manifest_path(out, as_of).unlink(missing_ok=True)
    moved: dict[Path, set[str]] = {}
    checks: dict[str, Any] = {}
    for block in blocks:
        for rel in block["files"]:
            src = out / rel
            folder = src.parent.parent
            os.replace(src, folder / src.name)  # same file system: an atomic rename
            moved.setdefault(folder, set()).add(src.name)
            checks[str((folder / src.name).relative_to(out))] = block["file_checks"][rel]
    manifest = {**manifest, "file_checks": dict(sorted(checks.items()))}
    for table in TABLE_SCHEMAS:
        folder = partition_dir(out, table, as_of)
        for old in part_files(folder):
            if folder in moved and old.name not in moved[folder]:
                old.unlink(missing_ok=True)
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    write_atomic(manifest_path(out, as_of), lambda tmp: tmp.write_text(text))
    clear_staging(out, as_of)


def clear_staging(out: Path, as_of: dt.date) -> None:
    """Remove a sealed date's staging folders (a driver killed while sealing, or a task
    that outlived its driver, can leave them; no reader looks there)."""
    for table in TABLE_SCHEMAS:
        shutil.rmtree(partition_dir(out, table, as_of) / BLOCKS, ignore_errors=True)
