-- Plain columns for SQL users of the historical table (run by `stabfrag db init`
-- after 001; idempotent). The table keeps the design note's five columns; every
-- row stabfrag loads carries in entity_scope its kind, and an entity row its
-- fragility and nearest scenario, so one view can show them as columns.
--
-- {table}, {entity_index} and {view} are identifiers filled in (and quoted) by
-- `stabfrag db init`; `stabfrag db init --print` shows the statements.

CREATE INDEX IF NOT EXISTS {entity_index}
    ON {table} ((entity_scope->>'entity_id'), as_of_date);

CREATE OR REPLACE VIEW {view} AS
SELECT
    joint_id,
    joint_type,
    as_of_date,
    model_id,
    entity_scope->>'kind'                                    AS kind,
    entity_scope->>'entity_id'                               AS entity_id,
    entity_scope->>'scenario_id'                             AS scenario_id,
    entity_scope->>'entity_type'                             AS entity_type,
    entity_scope->>'region'                                  AS region,
    (entity_scope->>'fragility')::double precision           AS fragility,
    entity_scope->>'nearest_scenario_id'                     AS nearest_scenario_id,
    (entity_scope->>'nearest_scenario_similarity')::double precision
                                                             AS nearest_scenario_similarity,
    entity_scope->'build'->>'input_fingerprint'              AS input_fingerprint,
    vector,
    entity_scope
FROM {table};
