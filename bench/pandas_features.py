"""A straightforward pandas groupby().rolling() twin of stab-features-v1 (baseline only)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SQ = math.sqrt(252)


def _roll(s: pd.Series, key: pd.Series, n: int):  # type: ignore[no-untyped-def]
    return s.groupby(key, sort=False).rolling(n, min_periods=n)


def _flat(x: pd.Series) -> pd.Series:
    return x.reset_index(level=0, drop=True)


def _max_dd(w: np.ndarray) -> float:
    return float((w / np.maximum.accumulate(w) - 1.0).min())


def _since_peak(w: np.ndarray) -> float:
    return float(np.argmax(w[::-1]))


def features(df: pd.DataFrame, *, paths: bool = True) -> pd.DataFrame:
    """Every feature at every row; df sorted by (entity_id, date) with a RangeIndex.

    `paths=False` leaves out the two path features (a Python call per window through
    `rolling().apply`): the core-feature script the backfill is compared with."""
    key = df["entity_id"]
    g = df.groupby("entity_id", sort=False)
    out = pd.DataFrame({"entity_id": key, "date": df["date"]})
    r = np.log(df["close"] / g["close"].shift(1))
    for n in (21, 63, 252):
        out[f"vol_{n}"] = _flat(_roll(r, key, n).std()) * SQ
    out["vol_ratio_21_252"] = out["vol_21"] / out["vol_252"]
    neg2 = np.minimum(r, 0.0) ** 2
    neg2[r.isna()] = np.nan
    out["downside_vol_63"] = np.sqrt(_flat(_roll(neg2, key, 63).mean())) * SQ
    for n in (21, 63):
        out[f"ret_{n}"] = np.log(df["close"] / g["close"].shift(n))
    out["worst_ret_63"] = _flat(_roll(r, key, 63).min())
    smallest = [_flat(_roll(r, key, 63).quantile(i / 62, interpolation="lower")) for i in range(4)]
    out["es95_63"] = sum(smallest) / 4
    out["dd_252"] = df["close"] / _flat(_roll(df["close"], key, 252).max()) - 1
    dv = df["close"] * df["volume"]
    ratio = (r.abs() / dv).where(dv > 0, 0.0).where(df["volume"].notna() & r.notna())
    traded = (dv > 0).astype(float).where(ratio.notna())
    total, days = _flat(_roll(ratio, key, 63).sum()), _flat(_roll(traded, key, 63).sum())
    out["amihud_63"] = (1e6 * total / days).where(days > 0)
    mean_dv = _flat(_roll(dv, key, 63).mean())
    out["log_dollar_vol_63"] = np.log(mean_dv.where(mean_dv > 0))
    lv = np.log1p(df["volume"])
    sd = _flat(_roll(lv, key, 252).std())
    diff = _flat(_roll(lv, key, 21).mean()) - _flat(_roll(lv, key, 252).mean())
    out["volume_z_21_252"] = (diff / sd).where(sd > 0)
    zero = (df["volume"] == 0).astype(float).where(df["volume"].notna())
    out["zero_volume_frac_63"] = _flat(_roll(zero, key, 63).mean())
    for lag in (21, 42):
        out[f"vol_21_lag{lag}"] = out.groupby("entity_id", sort=False)["vol_21"].shift(lag)
        out[f"dd_252_lag{lag}"] = out.groupby("entity_id", sort=False)["dd_252"].shift(lag)
    hl2 = np.log(df["high"] / df["low"]) ** 2
    out["parkinson_vol_21"] = np.sqrt(_flat(_roll(hl2, key, 21).mean()) / (4 * math.log(2))) * SQ
    out["spread_bps"] = df["spread_bps"]
    out["spread_chg_21"] = df["spread_bps"] - g["spread_bps"].shift(21)
    if paths:
        out["max_dd_63"] = _flat(_roll(df["close"], key, 63).apply(_max_dd, raw=True))
        out["days_since_peak_252"] = _flat(
            _roll(df["close"], key, 252).apply(_since_peak, raw=True)
        )
    return out
