# stabfrag recipes

install:
    pip install -e '.[dev,plot,ray,index]'

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

# The analog index on a daily history of 9.6 M states (bench/README.md); about 15 min.
bench-index:
    stabfrag generate --out bench/out/p4k --entities 4000 --days 2660 --seed 12
    stabfrag backfill --prices bench/out/p4k/prices.parquet --start 2000-01-01 --end 2100-01-01 --freq day --out bench/out/h10m
    python bench/index_bench.py --out bench/out/h10m --build --queries 400 --exact 200

demo:
    stabfrag demo

# Rebuild the shipped calibration from the synthetic reference panel, then refit v2, v3,
# v4 and the profile encoder.
models:
    stabfrag generate --out bench/out/reference --entities 500 --days 2520 --seed 7
    stabfrag calibrate --prices bench/out/reference/prices.parquet --start 2015-01-01 --end 2024-12-31 --model-dir stabfrag/models --description "bundled synthetic reference panel: stabfrag generate --entities 500 --days 2520 --seed 7"
    stabfrag fit --model-dir stabfrag/models --model joint-stab-fragility-v2
    stabfrag fit --model-dir stabfrag/models --model joint-stab-fragility-v3
    stabfrag fit --model-dir stabfrag/models
    stabfrag profiles fit --model-dir stabfrag/models
