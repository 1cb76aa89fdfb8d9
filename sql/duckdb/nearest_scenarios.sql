-- The scenarios nearest to one entity state, by cosine similarity of joint vectors.
-- Run against stabfrag.duckdb (its views), after setting the parameters:
--   SET VARIABLE entity_id = 'E00042.US';    -- the entity
--   SET VARIABLE as_of = DATE '2024-12-31';  -- the as-of date of its state
--   SET VARIABLE top_n = 10;                 -- how many scenarios
WITH state AS (
    SELECT vector FROM joint_embeddings
    WHERE kind = 'entity' AND as_of_date = getvariable('as_of')
      AND entity_id = getvariable('entity_id')
)
SELECT s.scenario_id,
       json_extract_string(s.entity_scope, '$.metadata.shock_type') AS shock_type,
       json_extract_string(s.entity_scope, '$.metadata.severity') AS severity,
       array_cosine_similarity(state.vector, s.vector) AS similarity
FROM joint_embeddings s, state
WHERE s.kind = 'scenario' AND s.as_of_date = getvariable('as_of')
ORDER BY similarity DESC, s.scenario_id
LIMIT getvariable('top_n');
