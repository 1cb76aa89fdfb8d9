-- The entity states nearest to one scenario on a date: who looks most like that stress.
-- Run against stabfrag.duckdb (its views), after setting the parameters:
--   SET VARIABLE scenario_id = 'SCN_GFC_2008';  -- the scenario
--   SET VARIABLE as_of = DATE '2024-12-31';     -- the as-of date
--   SET VARIABLE top_n = 10;                    -- how many entities
WITH scen AS (
    SELECT vector FROM joint_embeddings
    WHERE kind = 'scenario' AND as_of_date = getvariable('as_of')
      AND scenario_id = getvariable('scenario_id')
)
SELECT e.entity_id,
       array_cosine_similarity(scen.vector, e.vector) AS similarity,
       e.fragility,
       e.nearest_scenario_id
FROM joint_embeddings e, scen
WHERE e.kind = 'entity' AND e.as_of_date = getvariable('as_of')
ORDER BY similarity DESC, e.entity_id
LIMIT getvariable('top_n');
