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
import time
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import psycopg
from psycopg import sql

from stabfrag.config import packaged
from stabfrag.errors import SinkError
from stabfrag.schema import conform
from stabfrag.sinks.base import Partition, Sink
from stabfrag.sinks.dataset import TABLE_SCHEMAS, partitions, read_table
from stabfrag.sinks.pgcopy import COPY_COLUMNS, Hook, copy_rows

DSN_FORM = "postgresql://user:password@host:port/db or key=value pairs"


def checked_dsn(dsn: str) -> dict[str, str]:
    """The DSN's parameters; a DSN that does not parse is refused without echoing any of it
    (it may hold a password), and so is a URL whose password holds an unencoded '@'."""
    authority = dsn.split("://", 1)[1].split("/", 1)[0] if "://" in dsn else ""
    if authority.count("@") > 1:
        raise SinkError(
            "the PostgreSQL DSN has more than one '@' before its host: percent-encode an '@' "
            "in the password as %40 (the DSN is not shown: it holds a password)"
        )
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise SinkError(
            f"the PostgreSQL DSN cannot be parsed; expected {DSN_FORM} (the DSN is not "
            "shown: it may hold a password)"
        ) from None
    return {k: str(v) for k, v in params.items() if v is not None}


def _passwords(dsn: str) -> list[str]:
    """The DSN's password as parsed and as written (URL-encoded or not), longest first."""
    found = set()
    try:
        parsed = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
        if parsed:
            found.add(str(parsed))
    except psycopg.ProgrammingError:
        pass
    if "://" in dsn:
        userinfo = dsn.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
        if ":" in userinfo:
            found.add(userinfo.split(":", 1)[1])
    return sorted(found, key=len, reverse=True)


def redact(text: str, dsn: str | None) -> str:
    """Remove the DSN's password (and any password=... or user:pass@) from a message.

    The password is removed where it stands as a token of its own, so a short password does
    not blank out the same letters inside other words.
    """
    out = text
    for password in _passwords(dsn) if dsn else []:
        out = re.sub(rf"(?<![\w]){re.escape(password)}(?![\w])", "***", out)
    out = re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", out, flags=re.IGNORECASE)
    return re.sub(r"(://[^:/@\s]+:)[^/\s]+@", r"\1***@", out)


def one_line(exc: BaseException, dsn: str | None) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(first, dsn)


def connect(dsn: str, *, connect_timeout: int = 10) -> psycopg.Connection:
    checked_dsn(dsn)
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
    path = packaged("sql", "postgres", "001_joint_embeddings.sql")
    if not path.exists():
        raise SinkError("sql/postgres/001_joint_embeddings.sql is missing from this installation")
    return path


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
            cols: dict[str, str] = dict(cur.fetchall())
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


def slice_lock_key(table: str, joint_type: str, model_id: str, as_of: dt.date) -> int:
    digest = hashlib.blake2b(f"{table}|{joint_type}|{model_id}|{as_of}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def load_frames(
    dsn: str,
    table: str,
    frames: Iterable[pl.DataFrame],
    *,
    staging: bool = False,
    hook: Hook | None = None,
) -> int:
    """Replace the slices present in `frames` (joint_embeddings rows) in one transaction.

    Under an advisory lock per slice: delete the slices, then binary COPY the rows into
    the table. With `staging`, the rows are first copied into a temporary table and
    inserted from it after the delete (SPEC §7's staged form). PostgreSQL inserts an
    INSERT ... SELECT row by row but a COPY in batches, so the direct form loads about
    twice as fast; both commit everything or nothing.
    """
    frame = pl.concat([conform(f, TABLE_SCHEMAS["joint_embeddings"]) for f in frames])
    if frame.height == 0:
        return 0
    kinds = frame.select("joint_type", "model_id").unique()
    if kinds.height != 1:
        raise SinkError("one load takes one joint_type and model_id")
    joint_type, model_id = kinds.row(0)
    slices = sorted(set(frame["as_of_date"].to_list()))
    target = table_ident(table)
    delete = sql.SQL(
        "DELETE FROM {t} WHERE joint_type = %s AND model_id = %s AND as_of_date = ANY(%s)"
    ).format(t=target)
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            for day in slices:  # lock slices in one order: two loads cannot deadlock
                cur.execute(
                    "SELECT pg_advisory_xact_lock(%s)",
                    [slice_lock_key(table, joint_type, model_id, day)],
                )
            if staging:
                stage = sql.Identifier("stabfrag_stage")
                cur.execute(
                    "CREATE TEMP TABLE stabfrag_stage (joint_type varchar(32), as_of_date date, "
                    "vector bytea, entity_scope jsonb, model_id varchar(64)) ON COMMIT DROP"
                )
                copy_rows(cur, stage, frame, joint_type, model_id, hook)
                cur.execute(delete, [joint_type, model_id, slices])
                cur.execute(
                    sql.SQL("INSERT INTO {t} " + COPY_COLUMNS + " SELECT * FROM {s}").format(
                        t=target, s=stage
                    )
                )
            else:
                cur.execute(delete, [joint_type, model_id, slices])
                copy_rows(cur, target, frame, joint_type, model_id, hook)
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


class PostgresSink(Sink):
    """Stage partitions' joint rows; commit loads them all in one transaction."""

    def __init__(self, dsn: str, table: str, *, staging: bool = False) -> None:
        self.dsn = dsn
        self.table = table
        self.staging = staging
        table_ident(table)  # refuse a bad name or DSN before any work
        checked_dsn(dsn)
        self.staged: list[pl.DataFrame] = []
        self.rows = 0

    def stage(self, partition: Partition) -> None:
        self.staged.append(partition.tables["joint_embeddings"])

    def commit(self) -> None:
        self.rows += load_frames(self.dsn, self.table, self.staged, staging=self.staging)
        self.staged = []
        self.committed = True

    def rollback(self) -> None:
        self.staged = []


BATCH_ROWS = 250_000  # rows per transaction when streaming partitions


def load_partitions(
    out: Path,
    dsn: str,
    table: str,
    *,
    first: dt.date | None,
    last: dt.date | None,
    staging: bool = False,
) -> dict[str, object]:
    """Stream built partitions into PostgreSQL, a few partitions per transaction."""
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
            rows += load_frames(dsn, table, batch, staging=staging)
            batch, size = [], 0
    if batch:
        rows += load_frames(dsn, table, batch, staging=staging)
    seconds = time.perf_counter() - t0
    return {
        "partitions": len(dates),
        "rows": rows,
        "table": table,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / max(seconds, 1e-9)),
    }
