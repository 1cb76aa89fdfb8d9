"""A deliberately naive numpy twin of the behaviour traits, one entity at a time."""

from __future__ import annotations

import math

import numpy as np

from tests.features.oracle import _window as _last

NAN = float("nan")
N = 504


def entity_traits(
    close: np.ndarray, volume: np.ndarray, market_close: np.ndarray
) -> dict[str, np.ndarray]:
    """Every trait at every row; `market_close` is the market's close as of each row's date."""
    m = len(close)
    r = np.full(m, NAN)
    r[1:] = np.log(close[1:] / close[:-1])
    mr = np.full(m, NAN)
    mr[1:] = np.log(market_close[1:] / market_close[:-1])
    vol21 = np.full(m, NAN)
    for t in range(m):
        w = _last(r, t, 21)
        if w is not None:
            vol21[t] = np.std(w, ddof=1) * math.sqrt(252)
    out: dict[str, list[float]] = {}

    def put(name: str, value: float) -> None:
        out.setdefault(name, []).append(value)

    for t in range(m):
        rw, mw = _last(r, t, N), _last(mr, t, N)
        if rw is None or mw is None:
            put("beta", NAN)
            put("market_corr", NAN)
        else:
            cov = np.mean((rw - rw.mean()) * (mw - mw.mean()))
            put("beta", cov / np.var(mw) if np.var(mw) > 0 else NAN)
            put("market_corr", cov / math.sqrt(np.var(mw) * np.var(rw)))
        put("vol_504", NAN if rw is None else float(np.std(rw, ddof=1)) * math.sqrt(252))
        lv = _last(np.log(np.maximum(vol21, 1e-8)), t, N)
        put("vol_of_vol_504", NAN if lv is None else float(np.std(lv, ddof=1)))
        cw = _last(close, t, N)
        if cw is None:
            put("worst_drawdown_504", NAN)
            put("rows_since_peak_504", NAN)
        else:
            put("worst_drawdown_504", float(np.min(cw / np.maximum.accumulate(cw) - 1)))
            put("rows_since_peak_504", float(N - 1 - np.flatnonzero(cw == cw.max())[-1]))
        if rw is None:
            put("skew_504", NAN)
        else:
            d = rw - rw.mean()
            put("skew_504", float(np.mean(d**3) / np.mean(d**2) ** 1.5))
        vw = _last(volume, t, N)
        dv = None if vw is None or cw is None else np.mean(cw * vw)
        put("log_dollar_volume_504", NAN if dv is None or dv <= 0 else math.log(dv))
        put("volume_instability_504", NAN if vw is None else float(np.std(np.log1p(vw), ddof=1)))
        put("zero_volume_share_504", NAN if vw is None else float(np.mean(vw == 0)))
        put("listing_age", float(t + 1))
    return {k: np.array(v) for k, v in out.items()}
