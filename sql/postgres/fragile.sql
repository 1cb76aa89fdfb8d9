-- The most fragile entities on one date, from the view `stabfrag db init` creates.
-- psql:  \set as_of '2024-12-31'  \set top_n 20  \i fragile.sql
-- (a table named by --pg-table T has the view T_flat)
SELECT entity_id, model_id, fragility, nearest_scenario_id, nearest_scenario_similarity
FROM joint_embeddings_flat
WHERE kind = 'entity' AND as_of_date = :'as_of'
ORDER BY fragility DESC NULLS LAST, entity_id, model_id
LIMIT :top_n;
