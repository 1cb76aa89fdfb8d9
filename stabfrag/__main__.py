"""python -m stabfrag: the command line."""

from stabfrag.cli import app

app()
