"""The optional pgvector column of joint_embeddings: `db init --vector-column` adds
`embedding` (halfvec(384), or vector(384) before pgvector 0.7), and `--vector-index` the
column with an HNSW index for cosine distance, where the server has the `vector`
extension. Loads then fill it in the same binary COPY as the float32 bytes; a table
without it loads as before. An HNSW index kept up row by row makes a load about a
hundred times slower, so a bulk load goes into the column alone and the index is built
after it, in one pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg import sql

from stabfrag.schema import DIM

COLUMN = "embedding"
HNSW_SINCE = (0, 5, 0)  # the first pgvector with HNSW
HALFVEC_SINCE = (0, 7, 0)  # the first with halfvec


@dataclass(frozen=True)
class VectorType:
    """A pgvector type of the embedding column and how its binary COPY value is laid out:
    int16 dimensions, int16 zero, then the elements big-endian."""

    name: str
    opclass: str
    element: str  # numpy dtype of one element on the wire

    @property
    def declared(self) -> str:
        return f"{self.name}({DIM})"

    @property
    def wire_bytes(self) -> int:
        """The bytes of one value on the wire after its length: the header, the elements."""
        return 4 + DIM * np.dtype(self.element).itemsize


HALFVEC = VectorType("halfvec", "halfvec_cosine_ops", ">f2")
VECTOR = VectorType("vector", "vector_cosine_ops", ">f4")
TYPES = {t.name: t for t in (HALFVEC, VECTOR)}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def available(cur: Any) -> str | None:
    """The version of the `vector` extension this server can create, or None."""
    cur.execute(
        "SELECT coalesce(installed_version, default_version) FROM pg_available_extensions "
        "WHERE name = 'vector'"
    )
    row = cur.fetchone()
    return None if row is None else str(row[0])


def type_for(version: str | None) -> tuple[VectorType | None, str]:
    """The column type this pgvector version supports with HNSW, or None and why."""
    if version is None:
        return None, (
            "no vector index: this server does not have the pgvector extension (`vector`); "
            "loads and queries work without it"
        )
    if _version(version) < HNSW_SINCE:
        return None, f"no vector index: pgvector {version} has no HNSW (0.5.0 or later)"
    chosen = HALFVEC if _version(version) >= HALFVEC_SINCE else VECTOR
    return chosen, f"vector column: {chosen.declared} column {COLUMN} (pgvector {version})"


def statements(
    table: sql.Identifier, index: sql.Identifier | None, kind: VectorType
) -> list[sql.Composed]:
    """Create the extension, the column and (with `index`) its HNSW index, idempotent."""
    made = [
        sql.SQL("CREATE EXTENSION IF NOT EXISTS vector").format(),
        sql.SQL("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {c} " + kind.declared).format(
            t=table, c=sql.Identifier(COLUMN)
        ),
    ]
    if index is not None:
        made.append(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {i} ON {t} USING hnsw ({c} " + kind.opclass + ")"
            ).format(i=index, t=table, c=sql.Identifier(COLUMN))
        )
    return made


def column_type(cur: Any, regclass: str) -> VectorType | None:
    """The pgvector type of the table's embedding column, if it has one."""
    cur.execute(
        "SELECT t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped",
        [regclass, COLUMN],
    )
    row = cur.fetchone()
    return None if row is None else TYPES.get(str(row[0]))
