"""PostgreSQL sink: binary COPY into a staging table, then a slice replace, in one transaction.

A slice is (joint_type, model_id, as_of_date). Loading deletes the slice and inserts the
staged rows under a transaction-scoped advisory lock per slice, so a re-run replaces, two
loads of one slice serialise, and a failure at any point commits nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import polars as pl
import psycopg
from psycopg import sql

from stabfrag.config import packaged
from stabfrag.errors import ServiceError, SinkError, first_line
from stabfrag.schema import conform
from stabfrag.sinks import pg_vector
from stabfrag.sinks.base import Partition, Sink
from stabfrag.sinks.dataset import TABLE_SCHEMAS, partitions, read_manifest, read_table, unvouched
from stabfrag.sinks.pg_partitions import ensure_partitions, is_partitioned, prune
from stabfrag.sinks.pg_vector import COLUMN, column_type
from stabfrag.sinks.pgcopy import Hook, copy_columns, copy_rows

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
    except psycopg.ProgrammingError as exc:
        # An option's name is never a secret: say which one libpq does not know.
        unknown = re.search(r'(?:option|parameter):? "([A-Za-z_]+)"', str(exc))
        which = f": unknown option {unknown.group(1)}" if unknown else ""
        raise SinkError(
            f"the PostgreSQL DSN cannot be parsed{which}; expected {DSN_FORM} (the DSN is "
            "not shown: it may hold a password)"
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
    first = first_line(exc)
    return redact(first, dsn)


def connect(dsn: str, *, connect_timeout: int = 10) -> psycopg.Connection:
    checked_dsn(dsn)
    try:
        return psycopg.connect(dsn, connect_timeout=connect_timeout, autocommit=False)
    except (psycopg.Error, OSError) as exc:
        raise ServiceError(f"cannot connect to PostgreSQL: {one_line(exc, dsn)}") from None


IDENT_PART = re.compile(r'[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+"')


def table_ident(name: str) -> sql.Identifier:
    """'table' or 'schema.table' as a quoted identifier (see table_parts)."""
    return sql.Identifier(*table_parts(name))


def table_parts(name: str) -> list[str]:
    """The unquoted parts of 'table' or 'schema.table'.

    Each part is a plain identifier, or one written in double quotes on purpose (with ""
    for a quote inside); anything else, such as `x; drop table y`, is refused: it is
    quoted safely either way, but nobody means to create that table.
    """
    parts = [m.group(0) for m in re.finditer(rf"{IDENT_PART.pattern}|\.", name)]
    names = [p for p in parts if p != "."]
    wellformed = "".join(parts) == name and ".".join(names) == name
    if not wellformed or not 1 <= len(names) <= 2:
        raise SinkError(
            f"--pg-table '{name}' is not 'table' or 'schema.table' made of plain identifiers "
            '(letters, digits, _) or "quoted" ones'
        )
    unquoted = [p[1:-1].replace('""', '"') if p.startswith('"') else p for p in names]
    if any(len(p) > 63 for p in unquoted):
        raise SinkError(f"--pg-table '{name}': an identifier is longer than 63 characters")
    return unquoted


def index_ident(name: str, kind: str = "slice") -> sql.Identifier:
    """The table's index of `kind` (slice, entity): its unquoted name, cut to leave room,
    and a digest of the whole name so that two long names cannot collide."""
    base = table_parts(name)[-1]
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]  # noqa: S324 - a name, not security
    return sql.Identifier(f"{base[:40]}_{kind}_idx_{digest}")


DDL_FILES = ("001_joint_embeddings.sql", "002_joint_embeddings_flat.sql")
# db init --partitioned: the same table, partitioned by year of as_of_date (its primary
# key must then hold the date).
PLAIN_KEY = "joint_id     bigserial    PRIMARY KEY,"
PARTITIONED_KEY = "joint_id     bigserial    NOT NULL,"
PARTITIONED_TAIL = ",\n    PRIMARY KEY (joint_id, as_of_date)\n) PARTITION BY RANGE (as_of_date)"


def ddl_path(name: str = DDL_FILES[0]) -> Path:
    path = packaged("sql", "postgres", name)
    if not path.exists():
        raise SinkError(f"sql/postgres/{name} is missing from this installation")
    return path


def view_ident(name: str) -> sql.Identifier:
    """The flat view of a table: T_flat, in the table's schema."""
    *schema, base = table_parts(name)
    if len(base) > 63 - len("_flat"):
        raise SinkError(f"--pg-table '{name}': too long a name for its view ({base}_flat)")
    return sql.Identifier(*schema, f"{base}_flat")


def entity_index_ident(name: str) -> sql.Identifier:
    return index_ident(name, "entity")


def partitioned_table(create: str) -> str:
    """001's CREATE TABLE, partitioned by range of as_of_date: one list of columns serves
    both forms."""
    head, close = create.rsplit(")", 1)
    if PLAIN_KEY not in head or close.strip():
        raise SinkError("sql/postgres/001_joint_embeddings.sql is not the expected table")
    return head.replace(PLAIN_KEY, PARTITIONED_KEY).rstrip() + PARTITIONED_TAIL


def ddl_statements(table: str, *, partitioned: bool = False) -> list[sql.Composed]:
    """The statements of the DDL files, with the table, index and view identifiers filled
    in: create table, slice index, then the entity-id index and the flat view.
    `partitioned`: the same table, partitioned by year of as_of_date."""
    idents = {
        "table": table_ident(table),
        "index": index_ident(table),
        "entity_index": entity_index_ident(table),
        "view": view_ident(table),
    }
    statements = []
    for name in DDL_FILES:
        text = "\n".join(
            line
            for line in ddl_path(name).read_text().splitlines()
            if not line.lstrip().startswith("--")
        )
        parts = [stmt.strip() for stmt in text.split(";") if stmt.strip()]
        if partitioned and name == DDL_FILES[0]:
            parts[0] = partitioned_table(parts[0])
        statements += [sql.SQL(stmt).format(**idents) for stmt in parts]
    return statements


_EXPECTED_COLUMNS = {
    "joint_id": "bigint",
    "joint_type": "character varying",
    "as_of_date": "date",
    "entity_scope": "jsonb",
    "model_id": "character varying",
    "vector": "bytea",
}


def vector_statements(
    table: str, mode: str = "index", kind: pg_vector.VectorType = pg_vector.HALFVEC
) -> list[sql.Composed]:
    """The statements of --vector-column or --vector-index (pgvector 0.7 or later)."""
    index = index_ident(table, "hnsw") if mode == "index" else None
    return pg_vector.statements(table_ident(table), index, kind)


def _vector_column(cur: Any, table: str, mode: str) -> list[str]:
    """The pgvector column (`mode` index: and its HNSW index, built over the rows there)
    where the server has the extension; one line saying why not where it has not."""
    kind, note = pg_vector.type_for(pg_vector.available(cur))
    if kind is None:
        return [note]
    for stmt in vector_statements(table, mode, kind):
        cur.execute(stmt)
    if mode == "index":
        note += ", HNSW index"
    else:
        note += ", no HNSW index (db init --vector-index builds it, best after a bulk load)"
    cur.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {t} WHERE {c} IS NULL)").format(
            t=table_ident(table), c=sql.Identifier(pg_vector.COLUMN)
        )
    )
    row = cur.fetchone()
    if row is not None and row[0]:
        note += "; rows loaded before the column have none until loaded again"
    return [note]


def init_table(
    dsn: str, table: str, *, partitioned: bool = False, vector: str | None = None
) -> list[str]:
    """Create the table (`partitioned`: by year of as_of_date) and its index when missing;
    check an existing table's columns. `vector` (column, index): add the pgvector column,
    and its HNSW index, where the server has the extension."""
    create_table, create_index, *flat = ddl_statements(table, partitioned=partitioned)
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
                raise ServiceError(
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
            split = is_partitioned(cur, regclass)
            done = ["table ready" + (" (partitioned by year)" if split else "")]
            if partitioned and not split:
                raise ServiceError(
                    f"table {table} exists and is not partitioned: --partitioned makes a new "
                    "table (load its rows into one made with it)"
                )
            if row is not None and row[0] == 0:
                cur.execute(create_index)
                done.append("index created")
            for stmt in flat:
                cur.execute(stmt)
            done.append(f"entity-id index and view {view_ident(table).as_string(conn)} ready")
            if vector is not None:
                done += _vector_column(cur, table, vector)
        conn.commit()
        return done
    except psycopg.Error as exc:
        _quiet_rollback(conn)
        raise ServiceError(f"{table}: {one_line(exc, dsn)}") from None
    finally:
        conn.close()


def prune_table(dsn: str, table: str, before: dt.date) -> dict[str, Any]:
    """db prune: drop the yearly partitions that end on or before `before`, in one
    transaction."""
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            done = prune(cur, table_ident(table).as_string(conn), before)
        conn.commit()
        return {"table": table, **done}
    except psycopg.Error as exc:
        _quiet_rollback(conn)
        raise ServiceError(f"{table}: {one_line(exc, dsn)}") from None
    finally:
        conn.close()


def slice_lock_key(table: str, joint_type: str, model_id: str, as_of: dt.date) -> int:
    digest = hashlib.blake2b(f"{table}|{joint_type}|{model_id}|{as_of}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


@dataclass
class LoadCounts:
    """What a load did to the table."""

    inserted: int = 0
    deleted: int = 0


# A row's key within its slice: what a load replaces when it brings the same key.
ROW_KEY = (
    "CASE WHEN t.entity_scope->>'entity_type' = 'SCENARIO' "
    "THEN 'scenario:' || (t.entity_scope->>'scenario_id') "
    "ELSE 'entity:' || (t.entity_scope->>'entity_id') END"
)


def _keys_csv(frame: pl.DataFrame) -> bytes:
    """(as_of_date, row key) of every row, as CSV for a COPY: no Python loop over rows."""
    # From entity_scope, as the table's side reads it (ROW_KEY): one definition of a key.
    scope = pl.col("entity_scope")
    key = (
        pl.when(scope.str.json_path_match("$.entity_type") == "SCENARIO")
        .then(pl.format("scenario:{}", scope.str.json_path_match("$.scenario_id")))
        .otherwise(pl.format("entity:{}", scope.str.json_path_match("$.entity_id")))
    )
    return frame.select("as_of_date", key.alias("key")).write_csv(include_header=False).encode()


def _slices_held(
    cur: Any, table: sql.Identifier, joint_type: str, model_id: str, days: list[dt.date]
) -> list[dt.date]:
    """The dates among `days` whose slice has rows: one probe of the slice index each."""
    if not days:
        return []
    # The dates also as a constant list: the planner then prunes a partitioned table to
    # their years (a correlated parameter alone would leave every year in the plan).
    cur.execute(
        sql.SQL(
            "SELECT d FROM unnest(%s::date[]) AS d WHERE EXISTS (SELECT 1 FROM {t} AS t "
            "WHERE t.joint_type = %s AND t.model_id = %s AND t.as_of_date = ANY(%s) "
            "AND t.as_of_date = d)"
        ).format(t=table),
        [days, joint_type, model_id, days],
    )
    return [row[0] for row in cur.fetchall()]


def with_provenance(frame: pl.DataFrame, manifest: dict[str, Any]) -> pl.DataFrame:
    """The rows with what the table has no column for added to their entity_scope (in the
    database only): the row's kind; an entity row's fragility and nearest scenario (so a
    SQL user reads them without the vectors); and `"build": {input_fingerprint, models}`,
    so rows of different builds in one table can be told apart."""
    build = json.dumps(
        {
            "input_fingerprint": manifest.get("input_fingerprint"),
            "models": manifest.get("models"),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    entity = pl.col("kind") == "entity"
    shown = pl.struct(
        "kind",
        *[
            pl.when(entity).then(pl.col(c)).alias(c)
            for c in ("fragility", "nearest_scenario_id", "nearest_scenario_similarity")
        ],
    ).struct.json_encode()
    return frame.with_columns(
        pl.concat_str(
            pl.col("entity_scope").str.strip_suffix("}"),
            pl.lit(","),
            shown.str.strip_prefix("{").str.strip_suffix("}"),
            pl.lit(f',"build":{build}}}'),
        ).alias("entity_scope")
    )


class Loader:
    """One transaction for a whole load: batches are added, commit publishes them all, and
    any failure before it leaves the table as it was.

    Each batch takes an advisory lock per slice (joint_type, model_id, as_of_date) in date
    order, deletes the rows it replaces (the same entities and scenarios, or the whole
    slice with `replace_slice`) and binary-COPYs its rows. With `staging`, rows go to a
    temporary table first and are inserted from it at commit (SPEC §7's staged form: about
    half the rate, PostgreSQL inserts an INSERT ... SELECT row by row).
    """

    def __init__(
        self,
        dsn: str,
        table: str,
        *,
        staging: bool = False,
        replace_slice: bool = False,
        hook: Hook | None = None,
    ) -> None:
        self.dsn, self.table = dsn, table
        self.staging, self.replace_slice, self.hook = staging, replace_slice, hook
        self.target = table_ident(table)
        self.counts = LoadCounts()
        self.conn = connect(dsn)
        self.cur = self.conn.cursor()
        self.locked: set[tuple[str, str, dt.date]] = set()
        self.stage = sql.Identifier("stabfrag_stage")
        # A partitioned table: each batch first makes the yearly partitions it needs.
        regclass = table_ident(table).as_string(self.conn)
        self.partitioned = self._ask(is_partitioned, regclass)
        self.embedding = self._ask(column_type, regclass)  # db init --vector-column
        self.years: set[int] = set()  # years whose partition this load has made sure of
        self.written: set[dt.date] = set()  # dates this load has COPYed rows of
        if not replace_slice:
            self._run("CREATE TEMP TABLE stabfrag_keys (d date, key text) ON COMMIT DROP")
        if staging:
            self._run(
                "CREATE TEMP TABLE stabfrag_stage (joint_type varchar(32), as_of_date date, "
                "vector bytea, entity_scope jsonb, model_id varchar(64)"
                + ("" if self.embedding is None else f", {COLUMN} {self.embedding.declared}")
                + ") ON COMMIT DROP"
            )

    def _ask(self, question: Any, *args: Any) -> Any:
        try:
            return question(self.cur, *args)
        except psycopg.Error as exc:
            self.fail(exc)

    def _run(self, statement: Any, params: list[Any] | None = None) -> int:
        try:
            self.cur.execute(statement, params)
        except (psycopg.Error, OSError) as exc:
            self.fail(exc)
        return self.cur.rowcount

    def fail(self, exc: BaseException) -> NoReturn:
        _quiet_rollback(self.conn)
        self.conn.close()
        hint = (
            f" (create it with: stabfrag db init --pg-table {self.table})"
            if isinstance(exc, psycopg.errors.UndefinedTable)
            else ""
        )
        raise ServiceError(
            f"PostgreSQL load into {self.table} failed: {one_line(exc, self.dsn)}{hint}"
        )

    def add(self, frame: pl.DataFrame) -> None:
        """Replace what `frame` (joint_embeddings rows) brings; nothing is visible yet."""
        frame = conform(frame, TABLE_SCHEMAS["joint_embeddings"])
        if frame.height == 0:
            return
        kinds = frame.select("joint_type", "model_id").unique()
        if kinds.height != 1:
            raise SinkError("one load takes one joint_type and model_id")
        joint_type, model_id = kinds.row(0)
        days = sorted(set(frame["as_of_date"].to_list()))
        for day in days:  # lock slices in date order: two loads cannot deadlock
            if (joint_type, model_id, day) not in self.locked:
                key = slice_lock_key(self.table, joint_type, model_id, day)
                self._run("SELECT pg_advisory_xact_lock(%s)", [key])
                self.locked.add((joint_type, model_id, day))
        new = [d for d in days if d.year not in self.years]
        if self.partitioned and new:
            self._ask(ensure_partitions, self.target, table_parts(self.table), new)
            self.years |= {d.year for d in new}
        if self.replace_slice:
            self.counts.deleted += self._run(
                sql.SQL(
                    "DELETE FROM {t} WHERE joint_type = %s AND model_id = %s "
                    "AND as_of_date = ANY(%s)"
                ).format(t=self.target),
                [joint_type, model_id, days],
            )
        else:
            self._replace_keys(frame, joint_type, model_id, days)
        self.written |= set(days)
        into = self.stage if self.staging else self.target
        try:
            copy_rows(self.cur, into, frame, joint_type, model_id, self.hook, self.embedding)
        except (psycopg.Error, OSError) as exc:
            self.fail(exc)
        self.counts.inserted += frame.height

    def _replace_keys(
        self, frame: pl.DataFrame, joint_type: str, model_id: str, days: list[dt.date]
    ) -> None:
        """Delete the rows of the batch's slices that have the keys it brings. A slice with
        no rows yet (a new date: most of a backfill's load) costs one index probe."""
        held = [d for d in days if d in self.written] + self._ask(
            _slices_held,
            self.target,
            joint_type,
            model_id,
            [d for d in days if d not in self.written],
        )
        if not held:
            return
        frame = frame.filter(pl.col("as_of_date").is_in(held))
        self._run("TRUNCATE stabfrag_keys")
        try:
            with self.cur.copy("COPY stabfrag_keys (d, key) FROM STDIN (FORMAT csv)") as copy:
                copy.write(_keys_csv(frame))
        except (psycopg.Error, OSError) as exc:
            self.fail(exc)
        self._run("ANALYZE stabfrag_keys")  # a fresh temp table has no statistics
        # The batch's dates are named so the slice index bounds the rows read: without
        # them a growing table is scanned once per batch (quadratic in a large load).
        self.counts.deleted += self._run(
            sql.SQL(
                "DELETE FROM {t} AS t USING stabfrag_keys AS k WHERE t.joint_type = %s "
                "AND t.model_id = %s AND t.as_of_date = ANY(%s) AND t.as_of_date = k.d "
                "AND " + ROW_KEY + " = k.key"
            ).format(t=self.target),
            [joint_type, model_id, sorted(held)],
        )

    def commit(self) -> LoadCounts:
        if self.staging:
            self._run(
                sql.SQL(
                    "INSERT INTO {t} " + copy_columns(self.embedding) + " SELECT * FROM {s}"
                ).format(t=self.target, s=self.stage)
            )
        try:
            self.conn.commit()
        except (psycopg.Error, OSError) as exc:
            self.fail(exc)
        self.conn.close()
        return self.counts

    def rollback(self) -> None:
        _quiet_rollback(self.conn)
        self.conn.close()


def load_frames(
    dsn: str,
    table: str,
    frames: Iterable[pl.DataFrame],
    *,
    staging: bool = False,
    replace_slice: bool = False,
    hook: Hook | None = None,
) -> LoadCounts:
    """Load joint_embeddings rows in one transaction (see Loader)."""
    loader = Loader(dsn, table, staging=staging, replace_slice=replace_slice, hook=hook)
    try:
        for frame in frames:
            loader.add(frame)
    except BaseException:
        loader.rollback()
        raise
    return loader.commit()


def _quiet_rollback(conn: psycopg.Connection) -> None:
    # A dead connection has nothing to roll back: the server did it already.
    with contextlib.suppress(psycopg.Error):
        conn.rollback()


class PostgresSink(Sink):
    """Stage partitions' joint rows; commit loads them all in one transaction."""

    name = "database"

    def __init__(
        self, dsn: str, table: str, *, staging: bool = False, replace_slice: bool = False
    ) -> None:
        self.dsn = dsn
        self.table = table
        self.staging = staging
        self.replace_slice = replace_slice
        table_ident(table)  # refuse a bad name or DSN before any work
        checked_dsn(dsn)
        self.staged: list[pl.DataFrame] = []
        self.counts = LoadCounts()
        self.seconds = 0.0
        self.reloaded: int | None = None  # sealed dates a resume loaded from the Parquet

    def stage(self, partition: Partition) -> None:
        rows = partition.tables["joint_embeddings"]
        self.staged.append(with_provenance(rows, partition.manifest) if rows.height else rows)

    def commit(self) -> None:
        t0 = time.perf_counter()
        done = load_frames(
            self.dsn,
            self.table,
            self.staged,
            staging=self.staging,
            replace_slice=self.replace_slice,
        )
        self.seconds += time.perf_counter() - t0
        self.counts.inserted += done.inserted
        self.counts.deleted += done.deleted
        self.staged = []
        self.committed = True

    def held(self, dates: list[dt.date], model_id: str, fingerprint: str) -> set[dt.date]:
        """Which of `dates` the table holds rows of this model and input for (none when
        the table is not there yet)."""
        if not dates:
            return set()
        query = sql.SQL(
            "SELECT DISTINCT as_of_date FROM {} WHERE as_of_date = ANY(%s) AND model_id = %s "
            "AND entity_scope->'build'->>'input_fingerprint' = %s"
        ).format(table_ident(self.table))
        with connect(self.dsn) as conn:
            name = table_ident(self.table).as_string(conn)
            exists = conn.execute("SELECT to_regclass(%s)", [name]).fetchone()
            if exists is None or exists[0] is None:
                return set()
            return {r[0] for r in conn.execute(query, [dates, model_id, fingerprint])}

    def summary(self) -> dict[str, object]:
        """What the database load did, for the run summary."""
        return {
            "table": self.table,
            "rows_inserted": self.counts.inserted,
            "rows_deleted": self.counts.deleted,
            "replace_slice": self.replace_slice,
            "load_seconds": round(self.seconds, 3),
            **({} if self.reloaded is None else {"dates_loaded_from_parquet": self.reloaded}),
        }

    def rollback(self) -> None:
        self.staged = []


BATCH_ROWS = 250_000  # rows per COPY batch when streaming partitions (one transaction)


def load_partitions(
    out: Path,
    dsn: str,
    table: str,
    *,
    first: dt.date | None,
    last: dt.date | None,
    staging: bool = False,
    replace_slice: bool = False,
    hook: Hook | None = None,
) -> dict[str, object]:
    """Stream committed partitions into PostgreSQL in one transaction: all or nothing."""
    if first is not None and last is not None and first > last:
        raise SinkError(f"--start {first} is after --end {last}")
    dates = [
        d for d in partitions(out) if (first is None or d >= first) and (last is None or d <= last)
    ]
    if not dates:
        raise SinkError(f"{out}: no joint_embeddings partitions in the range asked")
    t0 = time.perf_counter()
    loader = Loader(dsn, table, staging=staging, replace_slice=replace_slice, hook=hook)
    try:
        batch: list[pl.DataFrame] = []
        size = 0
        for d in dates:  # partitions are files: stream them, batch by batch
            rows = read_table(out, "joint_embeddings", d)
            batch.append(with_provenance(rows, read_manifest(out, d) or {}))
            size += rows.height
            if size >= BATCH_ROWS:
                loader.add(pl.concat(batch))
                batch, size = [], 0
        if batch:
            loader.add(pl.concat(batch))
    except BaseException:
        loader.rollback()
        raise
    counts = loader.commit()
    seconds = time.perf_counter() - t0
    return {
        "partitions": len(dates),
        # Date folders no manifest vouches for (a build that did not finish): not loaded.
        "partitions_without_manifest": unvouched(out),
        "rows": counts.inserted,
        "rows_deleted": counts.deleted,
        "replace_slice": replace_slice,
        "table": table,
        "seconds": round(seconds, 3),
        "rows_per_s": round(counts.inserted / max(seconds, 1e-9)),
    }
