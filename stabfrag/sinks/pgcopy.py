"""Binary COPY encoding: joint_embeddings rows as PostgreSQL binary tuples, built as one
fixed-width byte matrix per batch (never row by row), and streamed into a COPY by a
writer thread, so the server parses one batch while the next is encoded."""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable

import numpy as np
import polars as pl
import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from stabfrag.schema import DIM
from stabfrag.sinks.pg_vector import COLUMN, VectorType

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)
PG_EPOCH = dt.date(2000, 1, 1)
VECTOR_BYTES = DIM * 4
WRITE_BLOCK = 8 << 20  # bytes per copy.write call
ENCODE_ROWS = 16_384  # rows encoded at a time (about 30 MB)


class RowEncoder:
    """Binary COPY tuples of (joint_type, as_of_date, vector, entity_scope, model_id),
    built as one fixed-width byte matrix per batch, never row by row.

    JSON allows trailing white space and jsonb drops it, so each entity_scope is padded
    with spaces to the longest of the load: every tuple has the same width, constant
    fields come from one template row, and each varying field is a column block of the
    matrix filled by one slice assignment. Each batch gets a matrix of its own: the COPY
    writer thread still holds the previous one's blocks while this one is encoded.
    """

    def __init__(
        self,
        *,
        joint_type: str,
        model_id: str,
        json_width: int,
        embedding: VectorType | None = None,
    ) -> None:
        jt, mid = joint_type.encode(), model_id.encode()
        self.embedding = embedding
        # The pgvector column, when the table has one: (field, size, fixed bytes or None).
        extra: list[tuple[str, int, bytes | None]] = []
        if embedding is not None:
            extra = [
                ("emb_len", 4, struct.pack("!i", embedding.wire_bytes)),
                ("emb_head", 4, struct.pack("!hh", DIM, 0)),
                ("emb", embedding.wire_bytes - 4, None),
            ]
        layout = [
            ("count", 2),
            ("jt_len", 4),
            ("jt", len(jt)),
            ("date_len", 4),
            ("date", 4),
            ("vec_len", 4),
            ("vec", VECTOR_BYTES),
            ("js_len", 4),
            ("js_ver", 1),
            ("js", json_width),
            ("mid_len", 4),
            ("mid", len(mid)),
            *[(name, size) for name, size, _ in extra],
        ]
        self.at: dict[str, slice] = {}
        pos = 0
        for name, size in layout:
            self.at[name] = slice(pos, pos + size)
            pos += size
        template = np.full(pos, ord(" "), dtype=np.uint8)
        for name, value in (
            ("count", struct.pack("!h", 5 if embedding is None else 6)),
            ("jt_len", struct.pack("!i", len(jt))),
            ("jt", jt),
            ("date_len", struct.pack("!i", 4)),
            ("vec_len", struct.pack("!i", VECTOR_BYTES)),
            ("js_len", struct.pack("!i", json_width + 1)),
            ("js_ver", b"\x01"),
            ("mid_len", struct.pack("!i", len(mid))),
            ("mid", mid),
            *[(name, value) for name, _, value in extra if value is not None],
        ):
            template[self.at[name]] = np.frombuffer(value, np.uint8)
        self.width = json_width
        self.template = template

    def encode(self, dates: np.ndarray, scopes: pa.Array, vectors: np.ndarray) -> memoryview:
        n = len(dates)
        rows = np.empty((n, len(self.template)), dtype=np.uint8)
        rows[:] = self.template
        rows[:, self.at["date"]] = dates.astype(">i4").view(np.uint8).reshape(n, 4)
        vec = np.ascontiguousarray(vectors, dtype="<f4")
        rows[:, self.at["vec"]] = vec.view(np.uint8).reshape(n, VECTOR_BYTES)
        if self.embedding is not None:
            wire = vec.astype(self.embedding.element)
            rows[:, self.at["emb"]] = wire.view(np.uint8).reshape(n, -1)
        offsets, data = _json_bytes(scopes)
        lengths = np.diff(offsets)
        # A row-major boolean mask takes the concatenated JSON bytes in row order.
        js = rows[:, self.at["js"]]
        js[np.arange(self.width)[None, :] < lengths[:, None]] = data[offsets[0] : offsets[-1]]
        return rows.data.cast("B")


def _json_bytes(scopes: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of an Arrow string array, without copying the bytes."""
    binary = scopes.cast(pa.large_binary())
    offsets = np.frombuffer(binary.buffers()[1], dtype=np.int64)[binary.offset :]
    offsets = offsets[: len(binary) + 1]
    data = binary.buffers()[2]
    return offsets, (np.frombuffer(data, dtype=np.uint8) if data else np.zeros(0, np.uint8))


Hook = Callable[[int], None]  # called with bytes sent so far, between COPY blocks (tests)


COPY_COLUMNS = "(joint_type, as_of_date, vector, entity_scope, model_id)"


def copy_columns(embedding: VectorType | None) -> str:
    """The columns a COPY fills: the pgvector column last, when the table has one."""
    return COPY_COLUMNS if embedding is None else COPY_COLUMNS[:-1] + f", {COLUMN})"


def copy_rows(
    cur: psycopg.Cursor,
    into: sql.Composable,
    frame: pl.DataFrame,
    joint_type: str,
    model_id: str,
    hook: Hook | None,
    embedding: VectorType | None = None,
) -> None:
    """Stream `frame` as binary COPY into `into`, encoded a batch of rows at a time
    (`embedding`: the table's pgvector column, filled from the same vectors)."""
    # date is days since 1970-01-01 in Arrow; PostgreSQL counts from 2000-01-01.
    epoch_shift = (PG_EPOCH - dt.date(1970, 1, 1)).days
    days = (frame["as_of_date"].cast(pl.Int32).to_numpy() - epoch_shift).astype(np.int32)
    scopes = frame["entity_scope"].to_arrow()
    vectors = frame["vector"].to_numpy()
    copy_sql = "COPY {} " + copy_columns(embedding) + " FROM STDIN (FORMAT binary)"
    statement = sql.SQL(copy_sql).format(into)
    encoder = RowEncoder(
        joint_type=joint_type,
        model_id=model_id,
        json_width=int(np.diff(_json_bytes(scopes)[0]).max()),
        embedding=embedding,
    )
    # The queued writer sends from its own thread (its queue is bounded), so encoding
    # the next batch overlaps the server's work on this one (see bench/README.md).
    with cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
        sent = 0
        copy.write(COPY_HEADER)
        for lo in range(0, frame.height, ENCODE_ROWS):  # batches of rows: bounded memory
            hi = lo + ENCODE_ROWS
            view = encoder.encode(days[lo:hi], scopes[lo:hi], vectors[lo:hi])
            for start in range(0, len(view), WRITE_BLOCK):
                block = view[start : start + WRITE_BLOCK]
                copy.write(block)
                sent += len(block)
                if hook:
                    hook(sent)
        copy.write(COPY_TRAILER)
