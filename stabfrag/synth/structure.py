"""Structural traits for a generated market: who is fragile by construction, and how that
shows in prices, events and reported fundamentals.

- Leveraged and inverse funds: a few instruments return L times the market factor
  (L in 3, 2, -1, -2) with a little tracking noise.
- Balance-sheet leverage: every other non-market entity has a debt-to-equity ratio. Above 1
  it adds market exposure, raises the chance of a blow-up and, in each market crash, gives
  the most levered a credit-stress drop of their own (an entity event, labelled).
- Fundamentals: each company reports leverage, interest cover, profitability and size
  every quarter, 45 days after the quarter ends, with measurement noise.

The draws come from their own generator, so a panel without structure is unchanged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from stabfrag.schema import ENTITY
from stabfrag.synth.parts import DAILY, Events, Universe, entity_events, front_loaded

STRUCTURE_STREAM = 16  # the second generator's stream: default_rng([seed, 16])
FUND_SHARE = 0.04  # of instruments
FUND_LEVERAGE = np.array([3.0, 2.0, -1.0, -2.0])
CREDIT_STRESS_LEVERAGE = 2.0  # debt/equity above which a market crash brings credit stress
QUARTER_DAYS = 63
REPORT_LAG_DAYS = 45
FUNDAMENTAL_FIELDS = ("leverage", "interest_cover", "profitability", "size")


@dataclass(frozen=True)
class Structure:
    """Each entity's structure (fund leverage 0 for a company, debt/equity NaN for a fund
    or market) and the crashes a levered company gets credit stress in."""

    rng: np.random.Generator
    fund_leverage: np.ndarray
    debt_equity: np.ndarray
    crises: Events

    @property
    def blowup_chance(self) -> np.ndarray:
        """The extra chance of a blow-up over the panel, from leverage above 1."""
        return np.nan_to_num(0.05 * (self.debt_equity - 1.0), nan=0.0).clip(0.0, 0.3)

    def apply(
        self,
        u: Universe,
        ret: np.ndarray,
        sigma: np.ndarray,
        market_ret: np.ndarray,
        market_vol: np.ndarray,
    ) -> Events:
        """Change returns in place (funds, levered exposure, credit stress); return the
        credit-stress events."""
        n, t = ret.shape
        funds = np.flatnonzero(self.fund_leverage != 0)
        lev = self.fund_leverage[funds]
        noise = self.rng.standard_normal((len(funds), t))
        ret[funds] = lev[:, None] * market_ret[None, :] + 0.01 * DAILY * noise
        sigma[funds] = np.abs(lev)[:, None] * market_vol[None, :] * DAILY
        extra = np.nan_to_num(0.3 * (self.debt_equity - 1.0), nan=0.0).clip(0.0, 1.5)
        ret += extra[:, None] * (market_ret - market_ret.mean())[None, :]
        sigma *= 1.0 + extra[:, None]
        events: Events = []
        stressed = np.flatnonzero(np.nan_to_num(self.debt_equity) > CREDIT_STRESS_LEVERAGE)
        for i, ep in enumerate(c for c in self.crises if c["kind"] == "CRASH"):  # a few crashes
            drop = (0.08 * (self.debt_equity[stressed] - 1.0)).clip(0.05, 0.4)
            span = slice(ep["start"], ep["start"] + ep["length"])
            ret[stressed, span] += np.log(1 - drop)[:, None] * front_loaded(ep["length"])[None, :]
            events += entity_events(
                "CREDIT_STRESS",
                f"CREDIT_{i}",
                u.ids[stressed],
                np.full(len(stressed), ep["start"]),
                np.full(len(stressed), ep["length"]),
                drop,
            )
        return events

    def traits(self, u: Universe) -> pl.DataFrame:
        """The true structure of every entity (the ground truth a profile should find)."""
        return pl.DataFrame(
            {
                ENTITY: u.ids,
                "fund_leverage": self.fund_leverage,
                "debt_equity": self.debt_equity,
            }
        ).with_columns(pl.col("debt_equity").fill_nan(None))

    def fundamentals(
        self,
        u: Universe,
        close: np.ndarray,
        dates: np.ndarray,
        first: np.ndarray,
        last: np.ndarray,
    ) -> pl.DataFrame:
        """Quarterly reports of every company while listed: long format (entity_id, date,
        field, value), dated when published."""
        t = len(dates)
        ends = np.arange(QUARTER_DAYS - 1, t, QUARTER_DAYS)
        company = np.flatnonzero(~np.isnan(self.debt_equity))
        grid_ent, grid_q = np.meshgrid(company, ends, indexing="ij")
        keep = (grid_q >= first[grid_ent]) & (grid_q <= last[grid_ent])
        ent, q = grid_ent[keep], grid_q[keep]
        noise = self.rng.standard_normal((4, len(ent)))
        lev = self.debt_equity[ent]
        values = {
            "leverage": lev * np.exp(0.1 * noise[0]),
            "interest_cover": 6.0 / lev * np.exp(0.2 * noise[1]),
            "profitability": 0.06 - 0.015 * lev + 0.02 * noise[2],
            "size": np.log(close[ent, q] * u.base_volume[ent] * 50.0) + 0.05 * noise[3],
        }
        published = dates[q].astype("datetime64[D]") + np.timedelta64(REPORT_LAG_DAYS, "D")
        return (
            pl.DataFrame(
                {
                    ENTITY: np.tile(u.ids[ent], len(FUNDAMENTAL_FIELDS)),
                    "date": np.tile(published, len(FUNDAMENTAL_FIELDS)),
                    "field": np.repeat(FUNDAMENTAL_FIELDS, len(ent)),
                    "value": np.concatenate([values[f] for f in FUNDAMENTAL_FIELDS]),
                }
            )
            .filter(pl.col("date") <= dt.date.fromisoformat(str(dates[-1])))
            .sort(ENTITY, "date", "field")
        )


def structure_of(rng: np.random.Generator, u: Universe, crises: Events) -> Structure:
    """Draw who is a leveraged fund and every company's debt/equity."""
    n = len(u.ids)
    instruments = np.flatnonzero(u.kind == "INSTRUMENT")
    count = max(len(FUND_LEVERAGE), int(round(FUND_SHARE * len(instruments))))
    funds = rng.choice(instruments, size=min(count, len(instruments)), replace=False)
    fund_leverage = np.zeros(n)
    fund_leverage[np.sort(funds)] = np.resize(FUND_LEVERAGE, len(funds))
    debt_equity = np.exp(rng.normal(0.0, 0.6, n))
    debt_equity[(fund_leverage != 0) | (u.kind == "MARKET")] = np.nan
    return Structure(rng, fund_leverage, debt_equity, crises)
