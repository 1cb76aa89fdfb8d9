"""A deliberately naive numpy/pure-Python twin of stab-features-v1, one entity at a time."""

from __future__ import annotations

import math

import numpy as np

NAN = float("nan")
SQ = math.sqrt(252)


def _window(a: np.ndarray, t: int, n: int) -> np.ndarray | None:
    """The n values ending at t, or None when the window is not full (or holds NaN)."""
    if t - n + 1 < 0:
        return None
    w = a[t - n + 1 : t + 1]
    return None if np.isnan(w).any() else w


def entity_features(
    close: np.ndarray, volume: np.ndarray, high: np.ndarray, low: np.ndarray, spread: np.ndarray
) -> dict[str, np.ndarray]:
    """Every core feature at every row of one entity (rows in date order); NaN = null."""
    m = len(close)
    r = np.full(m, NAN)
    r[1:] = np.log(close[1:] / close[:-1])
    lv = np.log1p(volume)
    dv = close * volume
    out: dict[str, list[float]] = {}

    def put(name: str, value: float) -> None:
        out.setdefault(name, []).append(value)

    for t in range(m):
        for n in (21, 63, 252):
            w = _window(r, t, n)
            put(f"vol_{n}", NAN if w is None else float(np.std(w, ddof=1)) * SQ)
        w = _window(r, t, 63)
        put("downside_vol_63", NAN if w is None else math.sqrt(np.mean(np.minimum(w, 0) ** 2)) * SQ)
        put("worst_ret_63", NAN if w is None else float(w.min()))
        put("es95_63", NAN if w is None else float(np.sort(w)[:4].mean()))
        for n in (21, 63):
            put(f"ret_{n}", math.log(close[t] / close[t - n]) if t >= n else NAN)
        p = _window(close, t, 252)
        put("dd_252", NAN if p is None else close[t] / p.max() - 1)
        put(
            "days_since_peak_252",
            NAN if p is None else float(251 - np.flatnonzero(p == p.max())[-1]),
        )
        p = _window(close, t, 63)
        if p is None:
            put("max_dd_63", NAN)
        else:
            put("max_dd_63", float(np.min(p / np.maximum.accumulate(p) - 1)))
        # Liquidity: a window holding an unknown volume is null.
        wv = _window(volume, t, 63)
        if wv is None or _window(r, t, 63) is None:
            put("amihud_63", NAN)
        else:
            rr, dd = r[t - 62 : t + 1], dv[t - 62 : t + 1]
            keep = dd > 0
            put(
                "amihud_63",
                1e6 * float(np.mean(np.abs(rr[keep]) / dd[keep])) if keep.any() else NAN,
            )
        if wv is None:
            put("log_dollar_vol_63", NAN)
            put("zero_volume_frac_63", NAN)
        else:
            mean_dv = float(np.mean(dv[t - 62 : t + 1]))
            put("log_dollar_vol_63", math.log(mean_dv) if mean_dv > 0 else NAN)
            put("zero_volume_frac_63", float(np.mean(wv == 0)))
        l252, l21 = _window(lv, t, 252), _window(lv, t, 21)
        if l252 is None or l21 is None or np.std(l252, ddof=1) == 0:
            put("volume_z_21_252", NAN)
        else:
            put("volume_z_21_252", (l21.mean() - l252.mean()) / np.std(l252, ddof=1))
        h, lo = _window(high, t, 21), _window(low, t, 21)
        if h is None or lo is None:
            put("parkinson_vol_21", NAN)
        else:
            put(
                "parkinson_vol_21", math.sqrt(np.mean(np.log(h / lo) ** 2) / (4 * math.log(2))) * SQ
            )
        put("spread_bps", spread[t])
        put("spread_chg_21", spread[t] - spread[t - 21] if t >= 21 else NAN)
    res = {k: np.array(v, dtype=float) for k, v in out.items()}
    res["vol_ratio_21_252"] = res["vol_21"] / res["vol_252"]
    for lag in (21, 42):
        for base in ("vol_21", "dd_252"):
            shifted = np.full(m, NAN)
            shifted[lag:] = res[base][:-lag]
            res[f"{base}_lag{lag}"] = shifted
    return res
