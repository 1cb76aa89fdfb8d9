"""Window statistics with no rolling expression, as whole-column numpy folds.

A window of n rows ending at row t splits into pieces of 1, 2, 4, ... rows (the binary
digits of n). A summary of every 2^j-row window is built from two 2^(j-1)-row ones, so a
statistic over all rows takes about 2 log2(n) vector operations per summary field, never
a loop over rows or windows. A statistic qualifies when two adjacent windows' summaries
combine into the summary of their union: max drawdown (max, min, drawdown), the k
smallest values (a sorted k-list), the latest maximum (value, position).

Values for rows whose window crosses an entity or the start of the column are garbage;
callers keep only rows whose window is full.

A caller that needs only some rows (`at`: a month-end backfill's states, a build's last
row per entity) gets them from the same tree evaluated on those rows' windows alone:
exactly the combines the fold makes for that row, so the bytes are the fold's. The
lowest k levels of the tree may still be built over every row (each is one vector
operation, and a month-end's windows of 21 rows apart overlap there anyway); above them,
each wanted row gathers its pieces' level-k summaries and reduces them pair by pair.
k = 0 gathers the raw windows (about n combines per wanted row), k = log2(n) is the fold
(about 2 log2(n) per row of the column); `dense_levels` picks the cheapest. Rows not
asked for are then NaN.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from stabfrag.threads import pool

Summary = tuple[np.ndarray, ...]
# combine(earlier, later, n_earlier, n_later): the summary of two adjacent windows' union.
Combine = Callable[[Summary, Summary, int, int], Summary]


BLOCK_ROWS = 1 << 17  # rows per block: the temporaries of a block stay in cache


# Wanted rows per sparse block: a block's gathered windows stay a few MB whatever n is.
SPARSE_VALUES = 1 << 18
# A combine over gathered summaries costs about this many over a contiguous level: the
# gather, and rows of a few hundred values instead of a whole column.
GATHER_COST = 2.0


def dense_levels(rows: int, wanted: int, n: int) -> int | None:
    """How many of the fold's levels to build over all `rows` before the `wanted` rows
    gather the rest (0: their raw windows), or None where the whole fold is cheapest.
    Costs count combines: a dense level is one per row, a gathered one GATHER_COST."""
    top = n.bit_length() - 1
    fold = rows * (top + n.bit_count() - 1)
    best, cost = None, float(fold)
    for k in range(top):
        above = sum(1 << (j - k) for j in range(k + 1, top + 1) if n >> j & 1)
        low = sum(1 for j in range(k + 1) if n >> j & 1)  # pieces read whole from level j
        here = rows * k + wanted * GATHER_COST * (above + low)
        if here < cost:
            best, cost = k, here
    return best


def blocked(stat: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Run `stat(values, n, ...)` on blocks of rows, each with the n - 1 rows before it.

    A value depends only on its own window, so blocks give the same bytes as one pass;
    they keep temporaries small and let numpy (which releases the GIL) use every core.
    With `at` (sorted row positions) only those rows are sure to hold their value where
    `dense_levels` finds that cheaper: `stat(values, n, ..., at=...)` computes them and
    every other row is NaN.
    """

    @functools.wraps(stat)
    def run(values: np.ndarray, n: int, *args: int, at: np.ndarray | None = None) -> np.ndarray:
        total = len(values)
        levels = None if at is None else dense_levels(total, len(at), n)
        if at is not None and levels is not None:
            return _at_rows(stat, values, n, args, at, levels)
        if total <= BLOCK_ROWS:
            return stat(values, n, *args)
        out = np.empty(total, dtype=np.float64)

        def one(lo: int) -> None:
            hi = min(lo + BLOCK_ROWS, total)
            start = max(0, lo - (n - 1))
            out[lo:hi] = stat(values[start:hi], n, *args)[lo - start :]

        list(pool().map(one, range(0, total, BLOCK_ROWS)))  # blocks of rows, not row loops
        return out

    return run


def _at_rows(
    stat: Callable[..., np.ndarray],
    values: np.ndarray,
    n: int,
    args: tuple[int, ...],
    at: np.ndarray,
    levels: int,
) -> np.ndarray:
    """`stat` at the rows `at` alone, in blocks: of wanted rows where only their windows
    are read (levels 0), else of rows (with the n - 1 before) whose low levels are built."""
    out = np.full(len(values), np.nan)
    full = at[at >= n - 1]  # (a window that starts before the column is garbage anyway)
    if levels == 0:
        step = max(1, SPARSE_VALUES // n)

        def wanted(lo: int) -> None:
            rows = full[lo : lo + step]
            out[rows] = stat(values, n, *args, at=rows)

        list(pool().map(wanted, range(0, len(full), step)))
        return out
    bounds = np.searchsorted(full, np.arange(0, len(values) + BLOCK_ROWS, BLOCK_ROWS))

    def block(i: int) -> None:
        rows = full[bounds[i] : bounds[i + 1]]
        if len(rows):
            start = max(0, i * BLOCK_ROWS - (n - 1))
            out[rows] = stat(values[start : rows[-1] + 1], n, *args, at=rows - start)

    list(pool().map(block, range(len(bounds) - 1)))
    return out


def _tail(summary: Summary, length: int) -> Summary:
    return tuple(a[len(a) - length :] for a in summary)


def _head(summary: Summary, length: int) -> Summary:
    return tuple(a[:length] for a in summary)


def window_fold(leaf: Summary, n: int, combine: Combine) -> Summary:
    """Summary of the n-row window ending at every row, from the one-row summaries `leaf`.

    `combine(earlier, later, n_earlier, n_later)` joins the summaries of two adjacent
    windows of those lengths. Arrays are kept suffix-aligned (element i of an array of
    length m is row L - m + i), so shifting is slicing, never a copy. Rows before n - 1
    get NaN (or -1 for integer fields).
    """
    total = len(leaf[0])
    if total < n:  # no window is full anywhere
        return tuple(
            np.full(total, -1 if a.dtype.kind == "i" else np.nan, dtype=a.dtype) for a in leaf
        )
    level = leaf  # level j: windows of 2^j rows, ending at rows 2^j - 1 .. L - 1
    acc: Summary | None = None
    acc_rows = 0  # rows the accumulated window covers, ending at the row itself
    with np.errstate(all="ignore"):
        for j in range(n.bit_length()):  # log2(n) levels, each a vector op over all rows
            size = 1 << j
            if n & size:
                if acc is None:
                    acc = level
                else:
                    # The new piece ends acc_rows rows before the row: its array shifted.
                    length = min(len(acc[0]), len(level[0]) - acc_rows)
                    piece = _head(level, len(level[0]) - acc_rows)
                    acc = combine(_tail(piece, length), _tail(acc, length), size, acc_rows)
                acc_rows += size
            if (size << 1) <= n:
                length = len(level[0]) - size
                level = combine(_head(level, length), _tail(level, length), size, size)
    assert acc is not None
    out = []
    for a in acc:
        full = np.empty(total, dtype=a.dtype)
        full[: total - len(a)] = -1 if a.dtype.kind == "i" else np.nan
        full[total - len(a) :] = a
        out.append(full)
    return tuple(out)


Leaf = Callable[[np.ndarray, Callable[[], np.ndarray]], Summary]
# leaf(values, positions): the one-row summaries of `values`; positions() gives each
# value's row in the column, for the statistics that need it.


def window_fold_at(
    values: np.ndarray, leaf: Leaf, n: int, combine: Combine, at: np.ndarray, levels: int = 0
) -> Summary:
    """window_fold's summaries at the rows `at` only (each at least n - 1), the same bytes.

    The fold's value at row t joins pieces of 1, 2, 4, ... rows (n's binary digits, the
    smallest ending at t), each piece a perfect tree of pairwise combines. Here the tree's
    lowest `levels` levels are built over every row (`levels` 0: none), each wanted row
    gathers its pieces' nodes of the top built level (or its window's values), and every
    piece is reduced by combining its adjacent pairs, level by level: the same combines on
    the same values.
    """
    if levels:
        return _fold_above(values, leaf, n, combine, at, levels)
    # Window position by wanted row, (n, len(at)): a level's pairs are whole rows, so
    # every combine runs over contiguous memory. Only the values are gathered; the
    # summaries' other fields are made from them.
    x = np.ascontiguousarray(sliding_window_view(values, n)[at - (n - 1)].T)
    windows = leaf(x, lambda: (at - (n - 1))[None, :] + np.arange(n)[:, None])
    acc: Summary | None = None
    acc_rows = 0
    with np.errstate(all="ignore"):
        for j in range(n.bit_length()):
            size = 1 << j
            if not n & size:
                continue
            end = n - acc_rows  # the piece is the `size` rows of the window before `end`
            piece = tuple(w[end - size : end] for w in windows)
            span = 1  # prices each row of `piece` summarises
            while span < size:  # level by level: adjacent pairs of rows
                piece = combine(
                    tuple(p[0::2] for p in piece), tuple(p[1::2] for p in piece), span, span
                )
                span *= 2
            acc = piece if acc is None else combine(piece, acc, size, acc_rows)
            acc_rows += size
    assert acc is not None
    return tuple(a[0] for a in acc)


def _fold_above(
    values: np.ndarray, leaf: Leaf, n: int, combine: Combine, at: np.ndarray, levels: int
) -> Summary:
    """window_fold_at with the lowest `levels` levels built over every row."""
    level = leaf(values, lambda: np.arange(len(values)))  # level j: 2^j rows, suffix-aligned
    acc: Summary | None = None
    acc_rows = 0

    def join(piece: Summary, size: int) -> None:
        nonlocal acc, acc_rows
        acc = piece if acc is None else combine(piece, acc, size, acc_rows)
        acc_rows += size

    with np.errstate(all="ignore"):
        for j in range(levels + 1):  # the built levels: a piece of one is read whole
            size = 1 << j
            if n & size:  # the piece's last row is at - acc_rows, element that - (size - 1)
                join(tuple(a[at - acc_rows - (size - 1)] for a in level), size)
            if j < levels:
                length = len(level[0]) - size
                level = combine(_head(level, length), _tail(level, length), size, size)
        node = 1 << levels
        for j in range(levels + 1, n.bit_length()):  # a piece of 2^j / node nodes, in order
            size = 1 << j
            if not n & size:
                continue
            last = at - acc_rows - (node - 1)  # the element of the piece's last node
            nodes = last[None, :] + (np.arange(size // node) * node - (size - node))[:, None]
            piece = tuple(a[nodes] for a in level)
            span = node
            while span < size:
                piece = combine(
                    tuple(p[0::2] for p in piece), tuple(p[1::2] for p in piece), span, span
                )
                span *= 2
            join(tuple(p[0] for p in piece), size)
    assert acc is not None
    return acc


def _fold(
    values: np.ndarray, leaf: Leaf, n: int, combine: Combine, at: np.ndarray | None
) -> Summary:
    """window_fold of leaf(values) at every row, or its summaries at the rows `at` by the
    cheapest way (`dense_levels`)."""
    if at is None:
        return window_fold(leaf(values, lambda: np.arange(len(values))), n, combine)
    levels = dense_levels(len(values), len(at), n)
    if levels is None:
        whole = window_fold(leaf(values, lambda: np.arange(len(values))), n, combine)
        return tuple(a[at] for a in whole)
    return window_fold_at(values, leaf, n, combine, at, levels)


def _drawdown_combine(earlier: Summary, later: Summary, *_: int) -> Summary:
    hi_a, lo_a, dd_a = earlier
    hi_b, lo_b, dd_b = later
    # A fall inside either part, or from the earlier part's peak to the later part's low.
    dd = np.divide(lo_b, hi_a)
    dd -= 1.0
    np.minimum(dd, dd_a, out=dd)
    np.minimum(dd, dd_b, out=dd)
    return np.maximum(hi_a, hi_b), np.minimum(lo_a, lo_b), dd


@blocked
def max_drawdown(close: np.ndarray, n: int, *, at: np.ndarray | None = None) -> np.ndarray:
    """min over s of close_s / max(close from window start to s) - 1, per n-row window."""
    return _fold(close, lambda c, _: (c, c, np.zeros_like(c)), n, _drawdown_combine, at)[2]


def _smallest_combine(earlier: Summary, later: Summary, *_: int) -> Summary:
    """The k smallest of two sorted k-lists, sorted: a bitonic merge."""
    k = len(earlier)
    # min(a_i, b_(k-1-i)) holds the k smallest as a bitonic sequence...
    merged = [np.fmin(earlier[i], later[k - 1 - i]) for i in range(k)]
    # ...which a bitonic half-cleaner network sorts (compare-exchange in place).
    gap = k // 2
    while gap:
        for i in range(k):
            if i % (2 * gap) < gap:
                low = np.fmin(merged[i], merged[i + gap])
                np.fmax(merged[i], merged[i + gap], out=merged[i + gap])
                merged[i] = low
        gap //= 2
    return tuple(merged)


@blocked
def smallest_mean(
    values: np.ndarray, n: int, k: int, *, at: np.ndarray | None = None
) -> np.ndarray:
    """Mean of the k smallest of the n values ending at every row (k a power of two)."""
    if k & (k - 1):
        raise ValueError("k must be a power of two for the bitonic merge")

    def leaf(v: np.ndarray, _: object) -> Summary:
        inf = np.full_like(v, np.inf)
        return (v, *[inf] * (k - 1))

    smallest = _fold(values, leaf, n, _smallest_combine, at)
    total = smallest[0].copy()
    for part in smallest[1:]:  # ascending order, as a sort then a sum would add them
        total += part
    return total / k


def _latest_max_combine(earlier: Summary, later: Summary, *_: int) -> Summary:
    v_a, p_a = earlier
    v_b, p_b = later
    take_later = v_b >= v_a  # a tie goes to the later row: the latest peak
    return np.where(take_later, v_b, v_a), np.where(take_later, p_b, p_a)


@blocked
def rows_since_max(values: np.ndarray, n: int, *, at: np.ndarray | None = None) -> np.ndarray:
    """Rows since the latest maximum of the n values ending at every row (0 at a new high)."""
    latest = _fold(values, lambda v, pos: (v, pos()), n, _latest_max_combine, at)[1]
    rows = np.arange(len(values)) if at is None else at
    return np.where(latest >= 0, rows - latest, np.nan)


# Plain window statistics. A window holding a NaN (a null) gives NaN, as min_samples = n.


def _alone(values: np.ndarray, _: object) -> Summary:
    return (values,)


def _sum(values: np.ndarray, n: int, *, at: np.ndarray | None = None) -> np.ndarray:
    return _fold(values, _alone, n, lambda a, b, *_: (a[0] + b[0],), at)[0]


rolling_sum = blocked(_sum)


@blocked
def rolling_mean(values: np.ndarray, n: int, *, at: np.ndarray | None = None) -> np.ndarray:
    return _sum(values, n, at=at) / n


@blocked
def rolling_min(values: np.ndarray, n: int, *, at: np.ndarray | None = None) -> np.ndarray:
    return _fold(values, _alone, n, lambda a, b, *_: (np.minimum(a[0], b[0]),), at)[0]


@blocked
def rolling_max(values: np.ndarray, n: int, *, at: np.ndarray | None = None) -> np.ndarray:
    return _fold(values, _alone, n, lambda a, b, *_: (np.maximum(a[0], b[0]),), at)[0]


def _moments_combine(earlier: Summary, later: Summary, n_a: int, n_b: int) -> Summary:
    """Chan et al.'s pairwise update of (mean, sum of squared deviations)."""
    mean_a, m2_a = earlier
    mean_b, m2_b = later
    total = n_a + n_b
    delta = np.subtract(mean_b, mean_a)
    mean = delta * (n_b / total)
    mean += mean_a
    m2 = np.multiply(delta, delta, out=delta)  # in place: these arrays are large
    m2 *= n_a * n_b / total
    m2 += m2_a
    m2 += m2_b
    return mean, m2


@blocked
def rolling_var(
    values: np.ndarray, n: int, ddof: int = 1, *, at: np.ndarray | None = None
) -> np.ndarray:
    """Sample variance per window (n > ddof); a constant window gives exactly 0."""
    moments = _fold(values, lambda v, _: (v, np.zeros_like(v)), n, _moments_combine, at)
    return moments[1] / (n - ddof)
