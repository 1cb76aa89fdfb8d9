"""stabfrag: the stability/fragility joint space.

For every entity as of a date, and for every stress scenario, one 384-dimensional unit
vector, so that "how close is this entity to a known bad region" is a cosine similarity.

>>> import stabfrag
>>> stabfrag.build("prices.parquet", as_of="2024-12-31", out="stabfrag-out")
>>> ds = stabfrag.open("stabfrag-out")
>>> ds.fragile(top_n=10)

The functions load on first use (stabfrag.api), so importing the package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "BuildConfig",
    "Dataset",
    "RunSummary",
    "StabfragError",
    "__version__",
    "backfill",
    "build",
    "open",
]

if TYPE_CHECKING:
    from stabfrag.api import Dataset, backfill, build, open
    from stabfrag.config import BuildConfig
    from stabfrag.engine.summary import RunSummary
    from stabfrag.errors import StabfragError

_HOMES = {
    "Dataset": "stabfrag.api",
    "backfill": "stabfrag.api",
    "build": "stabfrag.api",
    "open": "stabfrag.api",
    "BuildConfig": "stabfrag.config",
    "RunSummary": "stabfrag.engine.summary",
    "StabfragError": "stabfrag.errors",
}


def __getattr__(name: str) -> Any:
    """The public names, imported when first used."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'stabfrag' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(home), name)
