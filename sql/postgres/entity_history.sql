-- One entity's fragility and nearest scenario over time, from the view `stabfrag db init`
-- creates (the entity-id index makes it one index scan).
-- psql:  \set entity_id 'E00047.JP'  \i entity_history.sql
SELECT as_of_date, model_id, fragility, nearest_scenario_id, nearest_scenario_similarity
FROM joint_embeddings_flat
WHERE kind = 'entity' AND entity_id = :'entity_id'
ORDER BY as_of_date, model_id;
