-- The joint_embeddings table of the historical database (SPEC §7).
-- Compatible with a table another system already created with these columns:
-- every statement is IF NOT EXISTS, and stabfrag only adds the index when no
-- index on (joint_type, as_of_date, model_id) exists yet.
--
-- {table} and {index} are identifiers filled in (and quoted) by `stabfrag db init`;
-- `stabfrag db init --print` shows the statements for a given --pg-table.
-- `db init --partitioned` makes the same table partitioned by range of as_of_date, one
-- partition per year made by the loads that need it: the primary key is then
-- (joint_id, as_of_date), as PostgreSQL requires (`--print --partitioned` shows it).

CREATE TABLE IF NOT EXISTS {table} (
    joint_id     bigserial    PRIMARY KEY,
    joint_type   varchar(32)  NOT NULL,
    as_of_date   date         NOT NULL,
    entity_scope jsonb        NOT NULL,
    model_id     varchar(64)  NOT NULL,
    vector       bytea        NOT NULL,  -- 384 little-endian float32 = 1536 bytes
    vector_ref   varchar(255) NULL,
    created_at   timestamptz  NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS {index} ON {table} (joint_type, as_of_date, model_id);
