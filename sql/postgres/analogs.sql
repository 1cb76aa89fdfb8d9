-- The k past states most like an entity's state on a date, by the HNSW index that
-- `stabfrag db init --vector-index` makes where the server has pgvector: states of other
-- entities, of the same model, known at that date (at least :gap_days days before it).
-- psql:  \set entity_id 'E00001.US'  \set as_of '2024-12-31'  \set gap_days 180  \set k 10
--        \i analogs.sql
-- (a table named by --pg-table T: replace joint_embeddings below with T)
--
-- Cosine similarity is that of the embedding column (halfvec: half precision); the
-- float32 `vector` column holds the exact bytes. An HNSW scan filters after it searches:
-- when the filters leave few states, raise hnsw.ef_search (and, from pgvector 0.8, set
-- hnsw.iterative_scan = relaxed_order) or k rows may not all come back.
SET hnsw.ef_search = 200;
WITH q AS (
    SELECT embedding, model_id
    FROM joint_embeddings
    WHERE entity_scope->>'entity_id' = :'entity_id'
      AND as_of_date = :'as_of'
      AND entity_scope->>'kind' = 'entity'
    ORDER BY model_id
    LIMIT 1
)
SELECT t.entity_scope->>'entity_id'                   AS entity_id,
       t.as_of_date,
       t.model_id,
       1 - (t.embedding <=> (SELECT embedding FROM q)) AS similarity
FROM joint_embeddings AS t
WHERE t.as_of_date <= :'as_of'::date - :gap_days
  AND t.as_of_date < :'as_of'::date
  AND t.model_id = (SELECT model_id FROM q)
  AND t.entity_scope->>'kind' = 'entity'
  AND t.entity_scope->>'entity_id' <> :'entity_id'
ORDER BY t.embedding <=> (SELECT embedding FROM q)
LIMIT :k;
