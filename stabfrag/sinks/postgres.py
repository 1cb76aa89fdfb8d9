"""PostgreSQL sink: binary COPY into a staging table, then a slice replace, in one transaction.

A slice is (joint_type, model_id, as_of_date). Loading deletes the slice and inserts the
staged rows under a transaction-scoped advisory lock per slice, so a re-run replaces, two
loads of one slice serialise, and a failure at any point commits nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from stabfrag.schema import DIM, TABLE_SCHEMAS, conform
from stabfrag.sinks import Partition, SinkBase

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)
PG_EPOCH = dt.date(2000, 1, 1)
VECTOR_BYTES = DIM * 4
PREFIX_BYTES = 2 + 8 + 8 + 4 + VECTOR_BYTES + 4 + 1  # everything of a staging row but the JSON
WRITE_BLOCK = 8 << 20  # bytes per copy.write call
ENCODE_ROWS = 65_536  # rows encoded at a time


class SinkError(Exception):
    """A database problem, as one line with no secret in it."""


def redact(text: str, dsn: str | None) -> str:
    """Remove the DSN's password (and any password=... or user:pass@) from a message."""
    out = text
    if dsn:
        try:
            password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
        except psycopg.ProgrammingError:
            password = None
        if password:
            out = out.replace(str(password), "***")
    out = re.sub(r"(password\s*=\s*)\S+", r"\1***", out, flags=re.IGNORECASE)
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", out)


def one_line(exc: BaseException, dsn: str | None) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(first, dsn)


def connect(dsn: str, *, connect_timeout: int = 10) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, connect_timeout=connect_timeout, autocommit=False)
    except (psycopg.Error, OSError) as exc:
        raise SinkError(f"cannot connect to PostgreSQL: {one_line(exc, dsn)}") from None


def table_ident(name: str) -> sql.Identifier:
    """'table' or 'schema.table' as a quoted identifier; anything else is refused."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or any(not p or len(p) > 63 for p in parts):
        raise SinkError(f"--pg-table '{name}' is not 'table' or 'schema.table' (63 chars each)")
    return sql.Identifier(*parts)


def index_ident(name: str) -> sql.Identifier:
    base = name.split(".")[-1]
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]  # noqa: S324 - a name, not security
    return sql.Identifier(f"{base[:40]}_slice_idx_{digest}")


def ddl_path() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "sql" / "postgres", here / "sql" / "postgres"):
        path = candidate / "001_joint_embeddings.sql"
        if path.exists():
            return path
    raise SinkError("sql/postgres/001_joint_embeddings.sql is missing from this installation")


def ddl_statements(table: str) -> list[sql.Composed]:
    """The statements of the DDL file with the table and index identifiers filled in."""
    text = "\n".join(
        line for line in ddl_path().read_text().splitlines() if not line.lstrip().startswith("--")
    )
    return [
        sql.SQL(stmt.strip()).format(table=table_ident(table), index=index_ident(table))
        for stmt in text.split(";")
        if stmt.strip()
    ]


_EXPECTED_COLUMNS = {
    "joint_id": "bigint",
    "joint_type": "character varying",
    "as_of_date": "date",
    "entity_scope": "jsonb",
    "model_id": "character varying",
    "vector": "bytea",
}


def init_table(dsn: str, table: str) -> list[str]:
    """Create the table and its index when missing; check an existing table's columns."""
    create_table, create_index = ddl_statements(table)
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(create_table)
            regclass = table_ident(table).as_string(conn)
            cur.execute(
                "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                [regclass],
            )
            cols = dict(cur.fetchall())
            wrong = [c for c, t in _EXPECTED_COLUMNS.items() if cols.get(c) != t]
            if wrong:
                raise SinkError(
                    f"table {table} exists but column(s) {', '.join(wrong)} are missing or "
                    "of another type"
                )
            # Another system's index on the slice columns serves as well as ours.
            cur.execute(
                "SELECT count(*) FROM pg_index i WHERE i.indrelid = %s::regclass AND "
                "(SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(i.indkey) "
                "WITH ORDINALITY k(attnum, n) JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = k.attnum) = ARRAY['joint_type', 'as_of_date', 'model_id']",
                [regclass],
            )
            row = cur.fetchone()
            done = ["table ready"]
            if row is not None and row[0] == 0:
                cur.execute(create_index)
                done.append("index created")
        conn.commit()
        return done
    except psycopg.Error as exc:
        _quiet_rollback(conn)
        raise SinkError(f"{table}: {one_line(exc, dsn)}") from None
    finally:
        conn.close()


def encode_rows(
    order: np.ndarray, dates: np.ndarray, scopes: pa.Array, vectors: np.ndarray
) -> bytes:
    """Binary COPY tuples (no header or trailer) for staging rows (ord int4, as_of_date
    date, vector bytea, entity_scope jsonb), assembled by column operations, not per row.

    Every row is a fixed-width prefix (field count, ord, date, the 1,536 vector bytes,
    the jsonb header) followed by its JSON text: the prefixes are one (n, 1563) byte
    matrix filled column block by column block, and Arrow joins each prefix to its JSON.
    """
    n = len(order)
    scopes = scopes.cast(pa.large_binary())
    js_len = pc.binary_length(scopes).to_numpy(zero_copy_only=False).astype(np.int64)
    prefix = np.empty((n, PREFIX_BYTES), dtype=np.uint8)
    be32 = np.dtype(">i4")
    prefix[:, 0:2] = np.frombuffer(struct.pack("!h", 4), np.uint8)
    prefix[:, 2:6] = np.frombuffer(struct.pack("!i", 4), np.uint8)
    prefix[:, 6:10] = order.astype(be32).view(np.uint8).reshape(n, 4)
    prefix[:, 10:14] = np.frombuffer(struct.pack("!i", 4), np.uint8)
    prefix[:, 14:18] = dates.astype(be32).view(np.uint8).reshape(n, 4)
    prefix[:, 18:22] = np.frombuffer(struct.pack("!i", VECTOR_BYTES), np.uint8)
    vec = np.ascontiguousarray(vectors, dtype="<f4")
    prefix[:, 22 : 22 + VECTOR_BYTES] = vec.view(np.uint8).reshape(n, VECTOR_BYTES)
    prefix[:, 1558:1562] = (js_len + 1).astype(be32).view(np.uint8).reshape(n, 4)
    prefix[:, 1562] = 1  # jsonb binary format version
    heads = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(PREFIX_BYTES), n, [None, pa.py_buffer(prefix)]
    ).cast(pa.large_binary())
    rows = pc.binary_join_element_wise(heads, scopes, pa.scalar(b"", pa.large_binary()))
    body = rows.buffers()[2]
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)
    return memoryview(body)[offsets[0] : offsets[n]].tobytes()


def slice_lock_key(table: str, joint_type: str, model_id: str, as_of: dt.date) -> int:
    digest = hashlib.blake2b(f"{table}|{joint_type}|{model_id}|{as_of}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


Hook = Callable[[int], None]  # called with bytes sent so far, between COPY blocks (tests)


def load_frames(
    dsn: str,
    table: str,
    frames: Iterable[pl.DataFrame],
    *,
    hook: Hook | None = None,
) -> int:
    """Replace the slices present in `frames` (joint_embeddings rows) in one transaction."""
    frame = pl.concat([conform(f, TABLE_SCHEMAS["joint_embeddings"]) for f in frames])
    if frame.height == 0:
        return 0
    kinds = frame.select("joint_type", "model_id").unique()
    if kinds.height != 1:
        raise SinkError("one load takes one joint_type and model_id")
    joint_type, model_id = kinds.row(0)
    slices = sorted(set(frame["as_of_date"].to_list()))
    # date is days since 1970-01-01 in Arrow; PostgreSQL counts from 2000-01-01.
    epoch_shift = (PG_EPOCH - dt.date(1970, 1, 1)).days
    order = np.arange(frame.height, dtype=np.int32)
    days = (frame["as_of_date"].cast(pl.Int32).to_numpy() - epoch_shift).astype(np.int32)
    scopes = frame["entity_scope"].to_arrow()
    vectors = frame["vector"].to_numpy()
    target = table_ident(table)
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            for day in slices:  # lock slices in one order: two loads cannot deadlock
                cur.execute(
                    "SELECT pg_advisory_xact_lock(%s)",
                    [slice_lock_key(table, joint_type, model_id, day)],
                )
            cur.execute(
                "CREATE TEMP TABLE stabfrag_stage (ord int4, as_of_date date, "
                "vector bytea, entity_scope jsonb) ON COMMIT DROP"
            )
            with cur.copy(
                "COPY stabfrag_stage (ord, as_of_date, vector, entity_scope) FROM STDIN "
                "(FORMAT binary)"
            ) as copy:
                sent = 0
                copy.write(COPY_HEADER)
                for lo in range(0, frame.height, ENCODE_ROWS):  # batches: bounded memory
                    hi = lo + ENCODE_ROWS
                    payload = encode_rows(order[lo:hi], days[lo:hi], scopes[lo:hi], vectors[lo:hi])
                    view = memoryview(payload)
                    for start in range(0, len(view), WRITE_BLOCK):  # blocks of bytes
                        copy.write(view[start : start + WRITE_BLOCK])
                        sent += len(view[start : start + WRITE_BLOCK])
                        if hook:
                            hook(sent)
                copy.write(COPY_TRAILER)
            cur.execute(
                sql.SQL(
                    "DELETE FROM {t} WHERE joint_type = %s AND model_id = %s "
                    "AND as_of_date = ANY(%s)"
                ).format(t=target),
                [joint_type, model_id, slices],
            )
            cur.execute(
                sql.SQL(
                    "INSERT INTO {t} (joint_type, as_of_date, entity_scope, model_id, vector) "
                    "SELECT %s, as_of_date, entity_scope, %s, vector FROM stabfrag_stage "
                    "ORDER BY ord"
                ).format(t=target),
                [joint_type, model_id],
            )
        conn.commit()
        return frame.height
    except (psycopg.Error, OSError) as exc:
        _quiet_rollback(conn)
        raise SinkError(f"PostgreSQL load into {table} failed: {one_line(exc, dsn)}") from None
    finally:
        conn.close()


def _quiet_rollback(conn: psycopg.Connection) -> None:
    # A dead connection has nothing to roll back: the server did it already.
    with contextlib.suppress(psycopg.Error):
        conn.rollback()


class PostgresSink(SinkBase):
    """Stage partitions' joint rows; commit loads them all in one transaction."""

    def __init__(self, dsn: str, table: str) -> None:
        self.dsn = dsn
        self.table = table
        table_ident(table)  # refuse a bad name before any work
        self.staged: list[pl.DataFrame] = []
        self.rows = 0

    def write(self, partition: Partition) -> None:
        self.staged.append(partition.tables["joint_embeddings"])

    def commit(self) -> None:
        self.rows += load_frames(self.dsn, self.table, self.staged)
        self.staged = []
        self.committed = True

    def rollback(self) -> None:
        self.staged = []


BATCH_ROWS = 250_000  # rows per transaction when streaming partitions


def load_partitions(
    out: Path, dsn: str, table: str, *, first: dt.date | None, last: dt.date | None
) -> dict[str, object]:
    """Stream built partitions into PostgreSQL, a few partitions per transaction."""
    import time

    from stabfrag.sinks.parquet import partitions, read_table

    dates = [
        d for d in partitions(out) if (first is None or d >= first) and (last is None or d <= last)
    ]
    if not dates:
        raise SinkError(f"{out}: no joint_embeddings partitions in the range asked")
    t0 = time.perf_counter()
    rows, batch, size = 0, [], 0
    for d in dates:  # partitions are files: stream them, a batch per transaction
        frame = read_table(out, "joint_embeddings", d)
        batch.append(frame)
        size += frame.height
        if size >= BATCH_ROWS:
            rows += load_frames(dsn, table, batch)
            batch, size = [], 0
    if batch:
        rows += load_frames(dsn, table, batch)
    seconds = time.perf_counter() - t0
    return {
        "partitions": len(dates),
        "rows": rows,
        "table": table,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / max(seconds, 1e-9)),
    }
