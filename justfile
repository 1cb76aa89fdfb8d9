# stabfrag recipes

install:
    pip install -e '.[dev,plot,ray]'

test:
    python -m pytest -q

lint:
    ruff check stabfrag tests bench
    mypy stabfrag

bench:
    python bench/features_bench.py
    python bench/build_bench.py
    python bench/backfill_bench.py
    python bench/pg_bench.py

demo:
    stabfrag demo

# Rebuild the shipped calibration from the synthetic reference panel, then refit v2 and
# the profile encoder.
models:
    stabfrag generate --out bench/out/reference --entities 500 --days 2520 --seed 7
    stabfrag calibrate --prices bench/out/reference/prices.parquet --start 2015-01-01 --end 2024-12-31 --model-dir stabfrag/models --description "bundled synthetic reference panel: stabfrag generate --entities 500 --days 2520 --seed 7"
    stabfrag fit --model-dir stabfrag/models --model joint-stab-fragility-v2
    stabfrag fit --model-dir stabfrag/models
    stabfrag profiles fit --model-dir stabfrag/models
