"""`stabfrag index status`: what the analog index holds, and whether it still matches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stabfrag.index import store


def status(out: Path) -> dict[str, Any]:
    """The index's counts and parameters, and `fresh`: True when it matches every
    partition, False (with `stale_from` and `why`) when dates changed since."""
    manifest = store.read_index_manifest(out)
    if manifest is None:
        return {"index": "none", "fresh": False, "why": f"no analog index in {out}"}
    broken = store.damaged(out, manifest)
    if broken:
        return {"index": str(store.index_dir(out)), "fresh": False, "why": f"damaged: {broken}"}
    valid_before, why = store.staleness(out, manifest, store.built(out))
    summary: dict[str, Any] = {
        "index": str(store.index_dir(out)),
        "kind": manifest["kind"],
        "library": manifest["library"],
        "model": manifest["model"],
        "states": manifest["states"],
        "dates": manifest["dates"],
        "first_date": manifest["first_date"],
        "last_date": manifest["last_date"],
        "params": manifest["params"],
        "trained_on": manifest["trained"],
        "fresh": valid_before is None,
    }
    if valid_before is not None:
        summary["stale_from"] = valid_before.isoformat()
        summary["why"] = why
    return {**summary, **retrain_advice(manifest)}


OUTGROWN = 4  # history this many times the states the lists were trained for: retrain


def retrain_advice(manifest: dict[str, Any]) -> dict[str, str]:
    """`advice` when the history has far outgrown the training: the lists were sized and
    placed for the history of then, so each now holds several times the states (slower
    searches) and new regions of the space have no list of their own."""
    trained = int(manifest["trained"]["of_states"])
    if manifest["states"] <= OUTGROWN * trained:
        return {}
    return {
        "advice": f"the lists were trained on a history of {trained:,} states and it now "
        f"holds {manifest['states']:,}: run stabfrag index build --retrain"
    }
