-- Historical analogs: the past as-of dates whose state of the same entity (or market) is
-- closest to its state on a given date. The date itself and every date within
-- min_gap_days of it are left out, so an analog is a different episode, not yesterday.
-- model_id says which model made each past state (a mixed folder may hold several).
-- Run against stabfrag.duckdb (its views), after setting the parameters:
--   SET VARIABLE entity_id = 'E00000.US';    -- the entity or market
--   SET VARIABLE as_of = DATE '2024-12-31';  -- the date to find analogs of
--   SET VARIABLE top_n = 10;                 -- how many dates
--   SET VARIABLE min_gap_days = 180;         -- calendar days kept away from as_of
WITH target AS (
    SELECT vector FROM joint_embeddings
    WHERE kind = 'entity' AND as_of_date = getvariable('as_of')
      AND entity_id = getvariable('entity_id')
)
SELECT past.as_of_date,
       array_cosine_similarity(target.vector, past.vector) AS similarity,
       past.fragility,
       past.nearest_scenario_id,
       past.model_id
FROM joint_embeddings past, target
WHERE past.kind = 'entity' AND past.entity_id = getvariable('entity_id')
  AND past.as_of_date < getvariable('as_of')
  AND past.as_of_date <= getvariable('as_of') - to_days(CAST(getvariable('min_gap_days') AS INTEGER))
ORDER BY similarity DESC, past.as_of_date
LIMIT getvariable('top_n');
