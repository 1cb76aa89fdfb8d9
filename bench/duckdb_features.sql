-- stab-features-v1 as DuckDB window SQL (benchmark baseline). Reads the view `prices`.
WITH base AS (
    SELECT entity_id, date, close, volume, high, low, spread_bps,
           ln(close / lag(close) OVER e) AS r,
           row_number() OVER e AS obs,
           ln(1 + volume) AS lv,
           close * volume AS dv
    FROM prices
    WINDOW e AS (PARTITION BY entity_id ORDER BY date)
),
prep AS (
    SELECT *,
           CASE WHEN volume IS NULL OR r IS NULL THEN NULL
                WHEN dv > 0 THEN abs(r) / dv ELSE 0.0 END AS ratio,
           CASE WHEN volume IS NULL OR r IS NULL THEN NULL
                WHEN dv > 0 THEN 1.0 ELSE 0.0 END AS traded,
           CASE WHEN r IS NULL THEN NULL ELSE least(r, 0.0) ^ 2 END AS neg2,
           ln(high / low) ^ 2 AS hl2,
           CASE WHEN volume IS NULL THEN NULL WHEN volume = 0 THEN 1.0 ELSE 0.0 END AS zero
    FROM base
),
rolled AS (
    SELECT entity_id, date, obs, spread_bps,
        CASE WHEN count(r) OVER w21 = 21 THEN stddev_samp(r) OVER w21 * sqrt(252) END AS vol_21,
        CASE WHEN count(r) OVER w63 = 63 THEN stddev_samp(r) OVER w63 * sqrt(252) END AS vol_63,
        CASE WHEN count(r) OVER w252 = 252 THEN stddev_samp(r) OVER w252 * sqrt(252) END AS vol_252,
        CASE WHEN count(neg2) OVER w63 = 63 THEN sqrt(avg(neg2) OVER w63) * sqrt(252) END AS downside_vol_63,
        ln(close / lag(close, 21) OVER e) AS ret_21,
        ln(close / lag(close, 63) OVER e) AS ret_63,
        CASE WHEN count(r) OVER w63 = 63 THEN min(r) OVER w63 END AS worst_ret_63,
        CASE WHEN count(r) OVER w63 = 63
             THEN list_avg(list_slice(list_sort(list(r) OVER w63), 1, 4)) END AS es95_63,
        CASE WHEN obs >= 252 THEN close / max(close) OVER p252 - 1 END AS dd_252,
        CASE WHEN count(ratio) OVER w63 = 63 AND sum(traded) OVER w63 > 0
             THEN 1e6 * sum(ratio) OVER w63 / sum(traded) OVER w63 END AS amihud_63,
        CASE WHEN count(dv) OVER p63 = 63 AND avg(dv) OVER p63 > 0
             THEN ln(avg(dv) OVER p63) END AS log_dollar_vol_63,
        CASE WHEN count(lv) OVER p252 = 252 AND stddev_samp(lv) OVER p252 > 0 AND count(lv) OVER p21 = 21
             THEN (avg(lv) OVER p21 - avg(lv) OVER p252) / stddev_samp(lv) OVER p252 END AS volume_z_21_252,
        CASE WHEN count(zero) OVER p63 = 63 THEN avg(zero) OVER p63 END AS zero_volume_frac_63,
        CASE WHEN count(hl2) OVER p21 = 21
             THEN sqrt(avg(hl2) OVER p21 / (4 * ln(2))) * sqrt(252) END AS parkinson_vol_21,
        spread_bps - lag(spread_bps, 21) OVER e AS spread_chg_21,
        CASE WHEN obs >= 63 THEN list(close) OVER p63 END AS w63,
        CASE WHEN obs >= 252 THEN list(close) OVER p252 END AS w252
    FROM prep
    WINDOW e AS (PARTITION BY entity_id ORDER BY date),
           w21 AS (e ROWS 20 PRECEDING), w63 AS (e ROWS 62 PRECEDING), w252 AS (e ROWS 251 PRECEDING),
           p21 AS (e ROWS 20 PRECEDING), p63 AS (e ROWS 62 PRECEDING), p252 AS (e ROWS 251 PRECEDING)
)
SELECT entity_id, date, vol_21, vol_63, vol_252,
       vol_21 / nullif(vol_252, 0) AS vol_ratio_21_252,
       downside_vol_63, ret_21, ret_63, worst_ret_63, es95_63, dd_252, amihud_63,
       log_dollar_vol_63, volume_z_21_252, zero_volume_frac_63,
       lag(vol_21, 21) OVER e AS vol_21_lag21, lag(vol_21, 42) OVER e AS vol_21_lag42,
       lag(dd_252, 21) OVER e AS dd_252_lag21, lag(dd_252, 42) OVER e AS dd_252_lag42,
       parkinson_vol_21, spread_bps, spread_chg_21,
       -- path features: the running maximum inside each window, as list lambdas
       list_min(list_transform(range(1, 64), lambda i: w63[i] / list_max(w63[1:i]) - 1)) AS max_dd_63,
       list_position(list_reverse(w252), list_max(w252)) - 1 AS days_since_peak_252
FROM rolled
WINDOW e AS (PARTITION BY entity_id ORDER BY date)
