# stabfrag recipes

install:
    pip install -e '.[dev]'

test:
    python -m pytest -q

lint:
    ruff check stabfrag tests bench
    mypy stabfrag

bench:
    python bench/features_bench.py

demo:
    stabfrag demo
