-- One entity's fragility over time, with the scenario it was nearest to on each date, and
-- the model of each date (a folder built with --allow-mixed-models may hold several).
-- Run against stabfrag.duckdb (its views), after setting the parameter:
--   SET VARIABLE entity_id = 'E00000.US';  -- the entity
SELECT as_of_date, fragility, nearest_scenario_id, nearest_scenario_similarity, model_id
FROM joint_embeddings
WHERE kind = 'entity' AND entity_id = getvariable('entity_id')
ORDER BY as_of_date;
