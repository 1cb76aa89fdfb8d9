"""The Parquet sink: every table of a partition written under a temporary name, renamed
into place on commit, the partition's manifest last."""

from __future__ import annotations

import json
from pathlib import Path

from stabfrag.atomic import fsync_replace, temp_name
from stabfrag.schema import conform
from stabfrag.sinks.base import Partition, Sink
from stabfrag.sinks.dataset import MANIFEST, PART, TABLE_SCHEMAS, manifest_path, partition_dir


class ParquetSink(Sink):
    """Stage every table of a partition as temporary files; commit renames them into place."""

    name = "parquet"

    def __init__(self, out: Path) -> None:
        self.out = out
        self.staged: list[tuple[Path, Path]] = []

    def stage(self, partition: Partition) -> None:
        for table, frame in partition.tables.items():
            final = partition_dir(self.out, table, partition.as_of) / PART
            final.parent.mkdir(parents=True, exist_ok=True)
            # Temporary files of a run that was killed mid-write are garbage now.
            for stale in final.parent.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
            tmp = temp_name(final)
            conform(frame, TABLE_SCHEMAS[table]).write_parquet(
                tmp, compression="zstd", statistics=True
            )
            self.staged.append((tmp, final))
        manifest = json.dumps(partition.manifest, indent=2, sort_keys=True, default=str)
        final = manifest_path(self.out, partition.as_of)
        tmp = temp_name(final)
        tmp.write_text(manifest + "\n")
        self.staged.append((tmp, final))

    def commit(self) -> None:
        # The old manifests go first: a crash between two renames must not leave an old
        # manifest vouching for a mix of old and new files. Before commit, nothing changes.
        for _, final in self.staged:
            if final.name == MANIFEST:
                final.unlink(missing_ok=True)
        for tmp, final in self.staged:  # the manifest was staged last, so it lands last
            fsync_replace(tmp, final)
        self.staged.clear()
        self.committed = True

    def rollback(self) -> None:
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        self.staged.clear()
