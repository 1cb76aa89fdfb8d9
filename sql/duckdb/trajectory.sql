-- An entity's trajectory: its similarity to one scenario, and its fragility, over time,
-- with each date's model (a folder built with --allow-mixed-models may hold several).
-- Run against stabfrag.duckdb (its views), after setting the parameters:
--   SET VARIABLE entity_id = 'E00000.US';      -- the entity
--   SET VARIABLE scenario_id = 'SCN_GFC_2008'; -- the scenario
WITH e AS (
    SELECT as_of_date, vector, fragility, nearest_scenario_id, model_id FROM joint_embeddings
    WHERE kind = 'entity' AND entity_id = getvariable('entity_id')
),
s AS (
    SELECT as_of_date, vector FROM joint_embeddings
    WHERE kind = 'scenario' AND scenario_id = getvariable('scenario_id')
)
SELECT e.as_of_date,
       array_cosine_similarity(e.vector, s.vector) AS similarity,
       e.fragility,
       e.nearest_scenario_id,
       e.model_id
FROM e JOIN s USING (as_of_date)
ORDER BY e.as_of_date;
