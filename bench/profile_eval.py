"""Does the profile branch earn its weight? The built model (the default joint model)
scored without profiles and with them at several weights, in one evaluate run each, on:

- synthetic structural markets of seeds the profile encoder was not fitted on (201-203
  are its training and validation seeds), labelled from their ground-truth events;
- the real ETF history (behaviour block only), split in time: 2005-2011 (where weights
  may be compared) and 2013-2017 (out of time, reported, never used to choose).

    python bench/profile_eval.py --etf PATH [--model-dir DIR] [--weights 0.1,0.25,0.5,1]

Prints one JSON document: every figure per space and per split, and the funds the branch
moves nearest to and furthest from the HIGH scenarios on calm dates.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT  # noqa: E402

SYNTHETIC_SEEDS = (11, 12)
SPLITS = {"2005-2011": ("2005-01-01", "2011-12-31"), "2013-2017": ("2013-01-01", "2017-12-31")}
FIGURES = ("state_auc", "analog_precision_at_10", "calm_to_high", "shock_type_accuracy")


def cli(*args: str) -> dict[str, Any]:
    """Run a stabfrag command with --json and return its document."""
    res = subprocess.run(
        [sys.executable, "-m", "stabfrag", *args, "--json"], capture_output=True, text=True
    )
    if res.returncode != 0:
        raise SystemExit(f"stabfrag {' '.join(args[:2])} failed: {res.stderr.strip()}")
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of every space, and the branch's moves."""
    who = result.get("who", {})
    spaces = {
        name: {
            **{f: figs[f] for f in FIGURES},
            "episode_top1": result["episode_match"][name]["all"]["top1"],
            "cross_section_auc": result["cross_section"][name]["mean_auc"],
            # who gets hurt: rank IC with the forward 63-day drawdown, all dates and
            # before market falls
            **{k: who.get(name, {}).get(k) for k in ("ic", "ic_before_falls")},
        }
        for name, figs in result["figures"].items()
    }
    branch = result.get("profile_branch", {})
    moves = {
        k: {
            "mean_move": v["mean_move"],
            "nearest": [(m["entity_id"], round(m["move"], 3)) for m in v["nearest"]],
            "furthest": [(m["entity_id"], round(m["move"], 3)) for m in v["furthest"]],
        }
        for k, v in branch.items()
        if k.startswith("prof=")
    }
    return {"states": result["states"], "spaces": spaces, "moves": moves}


def split_labels(labels: Path, first: str, last: str, out: Path) -> Path:
    """The label rows that start within [first, last]."""
    frame = pl.read_csv(labels, comment_prefix="#")
    frame.filter(pl.col("start").is_between(pl.lit(first), pl.lit(last))).write_csv(out)
    return out


def synthetic(seed: int, model_dir: list[str], weights: str) -> dict[str, Any]:
    folder = OUT / f"profile_synth_s{seed}"
    if not (folder / "prices.parquet").exists():
        from stabfrag.synth import generate, write_market

        write_market(generate(400, 2520, seed, structural=True), folder)
    prices = str(folder / "prices.parquet")
    built = folder / "built"  # rebuilt each run: it must use the models of this checkout
    cli("backfill", "--start", "2017-01-01", "--end", "2024-12-31", "--prices", prices,
            "--out", str(built))  # fmt: skip
    cli("profiles", "build", "--prices", prices, "--fundamentals",
        str(folder / "fundamentals.parquet"), "--start", "2017-01-01", "--end", "2024-12-31",
        "--out", str(folder / "profiles"), *model_dir)  # fmt: skip
    profiles = str(folder / "profiles" / "profiles.parquet")
    result = cli("evaluate", "--out", str(built), "--labels", str(folder / "labels.csv"),
                 "--prices", prices, "--compare", "none", "--profiles", profiles,
                 "--profile-weights", weights)  # fmt: skip
    out = summary(result)
    truth = pl.read_parquet(folder / "traits.parquet")
    for moves in out["moves"].values():  # what the ground truth says of the moved entities
        for side in ("nearest", "furthest"):
            ids = [e for e, _ in moves[side]]
            moves[f"{side}_truth"] = truth.filter(pl.col("entity_id").is_in(ids)).to_dicts()
    return out


def real(etf: Path, model_dir: list[str], weights: str) -> dict[str, Any]:
    folder = OUT / "profile_real"
    built = folder / "built"
    cli("backfill", "--start", "2005-01-01", "--end", "2017-11-10", "--freq", "month",
        "--prices", str(etf), "--out", str(built), "--chunk-days", "1830")  # fmt: skip
    cli("profiles", "build", "--prices", str(etf), "--market", "SPY", "--start", "2005-01-01",
        "--end", "2017-11-10", "--out", str(folder / "profiles"), *model_dir)  # fmt: skip
    labels = Path(__file__).resolve().parent.parent / "data/labels/us_market_2005_2017.csv"
    out: dict[str, Any] = {}
    for split, (first, last) in SPLITS.items():
        part = split_labels(labels, first, last, folder.parent / f"labels_{split}.csv")
        for universe, extra in (("all", []), ("exposed_to_SPY", ["--exposed-to", "SPY"])):
            result = cli("evaluate", "--out", str(built), "--labels", str(part), "--prices",
                         str(etf), "--compare", "none", "--profiles",
                         str(folder / "profiles" / "profiles.parquet"), "--profile-weights",
                         weights, *extra)  # fmt: skip
            out[f"{split} {universe}"] = summary(result)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--etf", type=Path, required=True)
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--weights", default="0.1,0.25,0.5,1")
    args = parser.parse_args()
    model_dir = ["--model-dir", args.model_dir] if args.model_dir else []
    report = {
        "synthetic": {f"seed {s}": synthetic(s, model_dir, args.weights) for s in SYNTHETIC_SEEDS},
        "real": real(args.etf, model_dir, args.weights),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
