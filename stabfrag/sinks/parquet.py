"""The Parquet sink: every table of a partition written under a temporary name, renamed
into place on commit, the partition's manifest last."""

from __future__ import annotations

import contextlib
import json
import os
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import polars as pl

from stabfrag.atomic import fsync_file, temp_name
from stabfrag.schema import conform
from stabfrag.sinks.base import Partition, Sink
from stabfrag.sinks.blocks import BLOCKS, ONE_FILE_TABLES, block_manifest_path
from stabfrag.sinks.dataset import (
    MANIFEST,
    PART,
    TABLE_SCHEMAS,
    WRITE_OPTIONS,
    file_check,
    manifest_path,
    part_files,
    part_name,
    partition_dir,
)
from stabfrag.threads import pool

MAX_PENDING = 8  # files staged but not yet written, at most


def _write(frame: pl.DataFrame, path: Path) -> dict[str, Any]:
    """Write the file; return what the manifest records of it (read back while the bytes
    are in the page cache)."""
    frame.write_parquet(path, **WRITE_OPTIONS)
    return file_check(path)


class ParquetSink(Sink):
    """Stage every table of a partition as temporary files; commit renames them into place.

    With `block` set, the sink writes one entity block of each date into the date's staging
    folder (`.blocks/part-{block}.parquet`, its block manifest last); the date becomes
    visible only when every block is there and the run seals it (sinks.blocks.seal).
    """

    name = "parquet"

    def __init__(self, out: Path, block: int | None = None) -> None:
        self.out = out
        self.block = block
        self.staged: list[tuple[Path, Path]] = []
        self.pending: list[Future[dict[str, Any]]] = []
        # Per staged partition: its manifest's content, path, and its files' checks.
        self.manifests: list[tuple[dict[str, Any], Path, dict[str, Future[dict[str, Any]]]]] = []

    def _final(self, table: str, partition: Partition) -> Path:
        folder = partition_dir(self.out, table, partition.as_of)
        if self.block is None:
            return folder / PART
        # A table written once per date (by the last block) keeps the one-file name.
        name = PART if table in ONE_FILE_TABLES else part_name(self.block)
        return folder / BLOCKS / name

    def stage(self, partition: Partition) -> None:
        checks: dict[str, Future[dict[str, Any]]] = {}
        for table, frame in partition.tables.items():
            final = self._final(table, partition)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = _fresh_temp(final)
            # Files are written by a small pool (Polars releases the GIL while it encodes),
            # in any order; commit waits for them all and renames in staging order.
            if len(self.pending) >= MAX_PENDING:  # bounded: frames queued cost memory
                self.pending[-MAX_PENDING].result()
            written = pool().submit(_write, conform(frame, TABLE_SCHEMAS[table]), tmp)
            self.pending.append(written)
            self.staged.append((tmp, final))
            checks[str(final.relative_to(self.out))] = written
        if self.block is None:
            content, final = partition.manifest, manifest_path(self.out, partition.as_of)
        else:  # a block manifest names its files, so a resume can check they are all there
            content = {**partition.manifest, "files": list(checks)}
            final = block_manifest_path(self.out, partition.as_of, self.block)
        # Written at commit, once its files' sizes and checksums are known: it lands last.
        self.manifests.append((content, final, checks))

    def _wait(self) -> None:
        """Every staged file written (the first error raised once all have stopped)."""
        pending, self.pending = self.pending, []
        errors = [f.exception() for f in pending]
        for error in errors:
            if error is not None:
                raise error

    def _stage_manifests(self) -> None:
        """Each partition's manifest, with its files' checks, staged after its files."""
        ordered: list[tuple[Path, Path]] = []
        files = iter(self.staged)
        for content, final, checks in self.manifests:
            ordered.extend(next(files) for _ in checks)
            body = {**content, "file_checks": {k: f.result() for k, f in checks.items()}}
            tmp = _fresh_temp(final)
            tmp.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
            ordered.append((tmp, final))
        self.staged, self.manifests = ordered, []

    def commit(self) -> None:
        self._wait()
        self._stage_manifests()
        # Flushed to disk in parallel before any rename: a rename must not land before
        # its bytes do.
        list(pool().map(fsync_file, [tmp for tmp, _ in self.staged]))
        # The old manifests go first: a crash between two renames must not leave an old
        # manifest vouching for a mix of old and new files. Before commit, nothing changes.
        for _, final in self.staged:
            if final.name == MANIFEST:
                final.unlink(missing_ok=True)
        if self.block is None:
            # A date built before in several entity blocks: its other blocks' files go too,
            # or a reader would see them beside the new file.
            for _, final in self.staged:
                if final.name == PART:
                    for old in part_files(final.parent)[1:]:
                        old.unlink(missing_ok=True)
        for tmp, final in self.staged:  # the manifest was staged last, so it lands last
            os.replace(tmp, final)
        self.staged.clear()
        self.committed = True

    def rollback(self) -> None:
        with contextlib.suppress(Exception):  # a write that failed is why we roll back
            self._wait()
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        self.staged.clear()
        self.manifests.clear()


def _fresh_temp(final: Path) -> Path:
    """A new temporary name for `final`, after removing the temporaries of `final` a run
    killed between staging and commit left (its manifest's as well as its tables'). Another
    file's (a sibling block's, in flight) are not touched."""
    for stale in final.parent.glob(f".{final.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    return temp_name(final)
