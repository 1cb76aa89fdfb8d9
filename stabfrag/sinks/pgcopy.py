"""Binary COPY encoding: joint_embeddings rows as PostgreSQL binary tuples, built as one
fixed-width byte matrix per batch (never row by row), and streamed into a COPY."""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable

import numpy as np
import polars as pl
import psycopg
import pyarrow as pa
from psycopg import sql

from stabfrag.schema import DIM

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)
PG_EPOCH = dt.date(2000, 1, 1)
VECTOR_BYTES = DIM * 4
WRITE_BLOCK = 8 << 20  # bytes per copy.write call
ENCODE_ROWS = 65_536  # rows encoded at a time


class RowEncoder:
    """Binary COPY tuples of (joint_type, as_of_date, vector, entity_scope, model_id),
    built as one fixed-width byte matrix per batch, never row by row.

    JSON allows trailing white space and jsonb drops it, so each entity_scope is padded
    with spaces to the longest of the load: every tuple has the same width, constant
    fields come from one template row, and each varying field is a column block of the
    matrix filled by one slice assignment. The matrix is reused from batch to batch.
    """

    def __init__(self, *, joint_type: str, model_id: str, json_width: int, rows: int) -> None:
        jt, mid = joint_type.encode(), model_id.encode()
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
        ]
        self.at: dict[str, slice] = {}
        pos = 0
        for name, size in layout:
            self.at[name] = slice(pos, pos + size)
            pos += size
        template = np.full(pos, ord(" "), dtype=np.uint8)
        for name, value in (
            ("count", struct.pack("!h", 5)),
            ("jt_len", struct.pack("!i", len(jt))),
            ("jt", jt),
            ("date_len", struct.pack("!i", 4)),
            ("vec_len", struct.pack("!i", VECTOR_BYTES)),
            ("js_len", struct.pack("!i", json_width + 1)),
            ("js_ver", b"\x01"),
            ("mid_len", struct.pack("!i", len(mid))),
            ("mid", mid),
        ):
            template[self.at[name]] = np.frombuffer(value, np.uint8)
        self.width = json_width
        self.template = template
        self.matrix = np.empty((rows, pos), dtype=np.uint8)

    def encode(self, dates: np.ndarray, scopes: pa.Array, vectors: np.ndarray) -> memoryview:
        n = len(dates)
        rows = self.matrix[:n]
        rows[:] = self.template
        rows[:, self.at["date"]] = dates.astype(">i4").view(np.uint8).reshape(n, 4)
        vec = np.ascontiguousarray(vectors, dtype="<f4")
        rows[:, self.at["vec"]] = vec.view(np.uint8).reshape(n, VECTOR_BYTES)
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


def copy_rows(
    cur: psycopg.Cursor,
    into: sql.Composable,
    frame: pl.DataFrame,
    joint_type: str,
    model_id: str,
    hook: Hook | None,
) -> None:
    """Stream `frame` as binary COPY into `into`, encoded a batch of rows at a time."""
    # date is days since 1970-01-01 in Arrow; PostgreSQL counts from 2000-01-01.
    epoch_shift = (PG_EPOCH - dt.date(1970, 1, 1)).days
    days = (frame["as_of_date"].cast(pl.Int32).to_numpy() - epoch_shift).astype(np.int32)
    scopes = frame["entity_scope"].to_arrow()
    vectors = frame["vector"].to_numpy()
    statement = sql.SQL("COPY {} " + COPY_COLUMNS + " FROM STDIN (FORMAT binary)").format(into)
    encoder = RowEncoder(
        joint_type=joint_type,
        model_id=model_id,
        rows=min(ENCODE_ROWS, frame.height),
        json_width=int(np.diff(_json_bytes(scopes)[0]).max()),
    )
    with cur.copy(statement) as copy:
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
