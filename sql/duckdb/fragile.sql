-- Fragility ranking for a date: entity states by their highest cosine similarity to a
-- HIGH-severity scenario, with the scenario they are nearest to overall.
-- Run against stabfrag.duckdb (its views), after setting the parameters:
--   SET VARIABLE as_of = DATE '2024-12-31';  -- the as-of date
--   SET VARIABLE top_n = 20;                 -- how many entities
WITH scen AS (
    SELECT scenario_id, vector,
           json_extract_string(entity_scope, '$.metadata.severity') AS severity,
           json_extract_string(entity_scope, '$.metadata.shock_type') AS shock_type
    FROM joint_embeddings
    WHERE kind = 'scenario' AND as_of_date = getvariable('as_of')
),
ent AS (
    SELECT entity_id, vector
    FROM joint_embeddings
    WHERE kind = 'entity' AND as_of_date = getvariable('as_of')
),
sims AS (
    SELECT ent.entity_id, scen.scenario_id, scen.severity, scen.shock_type,
           array_cosine_similarity(ent.vector, scen.vector) AS similarity
    FROM ent CROSS JOIN scen
)
SELECT entity_id,
       max(similarity) FILTER (WHERE severity = 'HIGH') AS fragility,
       arg_max(scenario_id, similarity) FILTER (WHERE severity = 'HIGH') AS nearest_high_scenario,
       arg_max(scenario_id, similarity) AS nearest_scenario,
       arg_max(shock_type, similarity) AS nearest_shock_type,
       max(similarity) AS nearest_similarity
FROM sims
GROUP BY entity_id
ORDER BY fragility DESC, entity_id
LIMIT getvariable('top_n');
