from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stabfrag.analysis.labels import read_labels
from stabfrag.analysis.metrics import analogs, auc
from stabfrag.cli import app
from stabfrag.errors import LabelError
from tests.conftest import event_dates

runner = CliRunner()


def test_shock_type_accuracy_per_type_known_answers() -> None:
    import polars as pl

    from stabfrag.analysis.metrics import shock_type_by_type

    table = pl.DataFrame({"scenario_id": ["A", "B", "C"], "shock_type": ["FX", "FX", "RATES"]})
    tagged = pl.DataFrame({"shock_type": ["FX", "FX", "FX", "RATES", None]})
    nearest = np.array(["A", "B", "C", "A", "C"])
    assert shock_type_by_type(nearest, tagged, table) == {"FX": 2 / 3, "RATES": 0.0}


def test_each_shock_type_says_what_its_states_are_named() -> None:
    import polars as pl

    from stabfrag.analysis.metrics import shock_types_named

    table = pl.DataFrame({"scenario_id": ["A", "B", "C"], "shock_type": ["FX", "FX", "RATES"]})
    tagged = pl.DataFrame({"shock_type": ["FX", "FX", "FX", "FX", "RATES", None]})
    nearest = np.array(["A", "C", "C", "Z", "C", "A"])  # Z: not in the library
    got = shock_types_named(nearest, tagged, table)
    assert got == {"FX": {"RATES": 0.5, "FX": 0.25, "unnamed": 0.25}, "RATES": {"RATES": 1.0}}
    assert list(got["FX"]) == ["RATES", "FX", "unnamed"]  # most named first


def test_auc_known_answers() -> None:
    y = np.array([True, True, False, False])
    assert auc(np.array([0.9, 0.8, 0.1, 0.2]), y) == 1.0
    assert auc(np.array([0.1, 0.2, 0.9, 0.8]), y) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), y) == 0.5
    assert auc(np.array([0.9, 0.1, 0.5, 0.3]), y) == 0.5  # one pair of four in order, ...
    assert np.isnan(auc(np.array([0.1, 0.2]), np.array([True, True])))


def test_precision_at_k_known_answers() -> None:
    # Two clusters of unit vectors, stress in one; dates far apart so no gap applies.
    v = np.array([[1, 0], [1, 0.01], [0.99, 0], [0, 1], [0.01, 1], [0, 0.99]], dtype=float)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    dates = np.array([dt.date(2000 + i, 1, 1) for i in range(6)], dtype="datetime64[D]")
    stress = np.array([True, True, True, False, False, False])
    assert analogs(v, dates, stress, np.array([0, 1, 2]), k=2).precision(np.arange(3))[0] == 1.0
    # The gap removes every neighbour closer than a year: a query left with none is left
    # out and counted, never scored zero.
    near = np.array([dt.date(2000, 1, 1 + i) for i in range(6)], dtype="datetime64[D]")
    lonely = analogs(v, near, stress, np.array([0, 1]), k=2, gap_days=365)
    assert np.isnan(lonely.precision(np.array([0]))[0])
    assert lonely.precision(np.array([0, 1]))[1] == 2


def _labels(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("start,end,label,shock_type\n" + body)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("2020-01-01,2020-06-30,stress,\n2020-06-01,2020-12-31,calm,\n", "overlaps"),
        ("2020-01-01,2020-06-30,stress,METEOR\n", "unknown shock type 'METEOR'"),
        ("2020-01-01,2020-06-30,panic,\n", "not stress or calm"),
        ("2020-13-01,2020-06-30,stress,\n", "not a date"),
        ("2020-06-30,2020-01-01,stress,\n", "ends before it starts"),
    ],
)
def test_bad_labels_are_one_line_exit_2(tmp_path: Path, body: str, message: str, built) -> None:
    path = _labels(tmp_path, body)
    with pytest.raises(LabelError, match=message):
        read_labels(path)
    res = runner.invoke(app, ["evaluate", "--out", str(built), "--labels", str(path)])
    assert res.exit_code == 2 and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_the_text_says_what_each_episode_and_shock_type_is_named(
    tmp_path: Path, built, market
) -> None:
    # The crash end is the build's stressed date; its states are labelled GFC's.
    crash_end = max(d for d in event_dates(market, "CRASH"))
    path = tmp_path / "labels.csv"
    path.write_text(
        "start,end,label,shock_type,scenario_id\n"
        f"{crash_end},{crash_end},stress,EQUITY_CRASH,SCN_GFC_2008\n"
        "2024-12-31,2024-12-31,calm,,\n"
    )
    res = runner.invoke(app, ["evaluate", "--out", str(built), "--labels", str(path)])
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    at = lines.index(
        "episodes named by joint-stab-fragility-v4 (built) "
        "(their states' nearest historical scenario):"
    )
    named = lines[at + 1]
    assert named.startswith("  SCN_GFC_2008 (") and named.count("SCN_") in (2, 3, 4), named
    shares = [float(part.rsplit(" ", 1)[1]) for part in named.split(": ", 1)[1].split(", ")]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1.0 + 1e-9
    assert lines[at + 2].startswith("shock types named by joint-stab-fragility-v4 (built)")
    assert lines[at + 3].startswith("  EQUITY_CRASH: ")


def test_committed_label_files_read() -> None:
    root = Path(__file__).resolve().parents[2] / "data" / "labels"
    files = sorted(root.glob("*.csv"))
    assert files, root  # the committed label files are found
    for path in files:
        frame = read_labels(path)
        assert {"stress", "calm"} <= set(frame["label"].to_list()), path.name


def test_evaluate_on_generated_events(built, market, market_dir: Path) -> None:
    import json

    res = runner.invoke(
        app,
        [
            "evaluate",
            "--out",
            str(built),
            "--labels",
            str(market_dir / "labels.csv"),
            "--prices",
            str(market_dir / "prices.parquet"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stderr
    result = json.loads(res.stdout)
    from stabfrag.model.joint import JOINT_V1, JOINT_V2, JOINT_V3, JOINT_V4

    built_name = f"{JOINT_V4} (built)"  # the default model
    others = {JOINT_V1, JOINT_V2, JOINT_V3}
    baselines = {"vol_21 alone", "vol_63 alone", "original encoder"}
    assert set(result["figures"]) == {built_name, *others, *baselines}
    joint = result["figures"][built_name]
    assert result["states"]["stress"] > 0 and result["states"]["calm"] > 0
    assert joint["state_auc"] > 0.8, result
    for figures in result["figures"].values():
        for value in figures.values():
            assert value is None or 0.0 <= value <= 1.0
    # Every episode of the labels has its row, in every space.
    episodes = {e for e in result["per_episode"][built_name]}
    assert episodes and all(set(v) == episodes for v in result["per_episode"].values())
    assert result["cross_section"][built_name]["dates"] > 0
    # Episode match averaged over episodes, in every space.
    for match in result["episode_match"].values():
        assert match["macro"]["episodes"] == len(match) - 2  # beside "all" and "macro"
    # Shock types told apart in the scenario library, in every space.
    assert set(result["library"]) == set(result["figures"])
    assert all(0 <= v["same_type_nearest"] <= 1 for v in result["library"].values())
    # Shock-type accuracy for each labelled type; the macro figure is their mean.
    typed = {t for t in read_labels(market_dir / "labels.csv")["shock_type"] if t}
    for name, by_type in result["shock_types"].items():
        assert set(by_type) <= typed and by_type, by_type
        assert result["figures"][name]["shock_type_macro"] == pytest.approx(
            float(np.mean(list(by_type.values())))
        )
    # What each labelled type is taken for: shares of nearest types, own type's = accuracy.
    for name, named in result["shock_types_named"].items():
        assert set(named) == set(result["shock_types"][name])
        for kind, shares in named.items():
            assert sum(shares.values()) == pytest.approx(1.0)
            assert shares.get(kind, 0.0) == pytest.approx(result["shock_types"][name][kind])
    # Who gets hurt: every joint model and the two volatility baselines, on every state.
    who = result["who"]
    assert set(who) == {"definition", built_name, *others, "vol_21 alone", "vol_63 alone"}
    for name in (built_name, *others, "vol_21 alone", "vol_63 alone"):
        assert who[name]["dates"] > 0 and -1.0 <= who[name]["ic"] <= 1.0, who[name]
    assert who["vol_21 alone"]["share_of_dates_above_vol_21"] == 0.0
    # v3 ranks who falls by its fitted risk: better than v2, whose market block is shared.
    assert who[built_name]["ic"] > who[JOINT_V2]["ic"] + 0.05, who


def test_v2_re_encoded_equals_a_v2_build(built, market, market_dir: Path, tmp_path: Path) -> None:
    """Scoring another model from the stored features gives the vectors its own build
    writes: evaluate compares models on exactly what they would produce."""
    from stabfrag.analysis.evaluate import read_built, state_vectors
    from stabfrag.analysis.labels import label_states, read_labels
    from stabfrag.analysis.spaces import model_space
    from stabfrag.config import BuildConfig
    from stabfrag.engine import loop
    from stabfrag.model.bundle import load_models
    from stabfrag.model.joint import JOINT_V2
    from stabfrag.sinks.dataset import partitions

    v2_out = tmp_path / "v2"
    config = BuildConfig(
        prices=market_dir / "prices.parquet",
        entities=market_dir / "entities.parquet",
        out=v2_out,
        model=JOINT_V2,
    )
    loop.run(config, partitions(built))
    labels = read_labels(market_dir / "labels.csv")
    mine = read_built(built)
    tagged = label_states(mine.states, labels)
    space = model_space(
        load_models(None, JOINT_V2),
        mine.library,
        mine.features,
        tagged,
        prices=market_dir / "prices.parquet",
        market=None,
        newest=partitions(built)[-1],
    )
    theirs = label_states(read_built(v2_out).states, labels)
    assert theirs.select("as_of_date", "entity_id").equals(tagged.select("as_of_date", "entity_id"))
    np.testing.assert_allclose(space.states, state_vectors(v2_out, theirs), atol=1e-6)
    assert list(space.nearest) == theirs["nearest_scenario_id"].to_list()
    assert np.array_equal(space.fragility, theirs["fragility"].to_numpy())


def test_exposure_is_the_trailing_return_correlation(tmp_path: Path) -> None:
    import polars as pl

    from stabfrag.analysis.spaces import EXPOSURE_WINDOW, exposure

    rng = np.random.default_rng(3)
    n = 400
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(n)]
    r_m = rng.normal(0, 0.01, n)
    paths = {
        "MKT": r_m,
        "SAME": r_m,  # moves with the market: correlation 1
        "HAVEN": -r_m,  # moves against it: -1
        "OTHER": rng.normal(0, 0.01, n),  # unrelated
    }
    frames = [
        pl.DataFrame({"entity_id": e, "date": dates, "close": 100 * np.exp(np.cumsum(r))})
        for e, r in paths.items()
    ]
    young = pl.DataFrame(
        {"entity_id": "YOUNG", "date": dates[-100:], "close": 100 * np.exp(np.cumsum(r_m[-100:]))}
    )
    prices = pl.concat([*frames, young]).with_columns(pl.lit(1000.0).alias("volume"))
    path = tmp_path / "p.parquet"
    prices.write_parquet(path)
    last = dates[-1]
    states = pl.DataFrame(
        {
            "entity_id": ["SAME", "HAVEN", "OTHER", "YOUNG", "SAME"],
            "as_of_date": [last, last, last, last, dates[EXPOSURE_WINDOW - 10]],
        }
    )
    corr = exposure(path, states, "MKT")
    assert corr[0] == pytest.approx(1.0) and corr[1] == pytest.approx(-1.0)
    assert abs(corr[2]) < 0.3
    assert np.isnan(corr[3]) and np.isnan(corr[4])  # no full 252-day window yet
    with pytest.raises(LabelError, match="'NOPE' has no valid prices"):
        exposure(path, states, "NOPE")


def test_evaluate_exposed_universe(built, market_dir: Path) -> None:
    import json

    import polars as pl

    prices = market_dir / "prices.parquet"
    labels = str(market_dir / "labels.csv")
    market_entity = pl.read_parquet(prices)["entity_id"].min()
    base = ["evaluate", "--out", str(built), "--labels", labels, "--json"]
    everyone = json.loads(runner.invoke(app, [*base, "--prices", str(prices)]).stdout)
    res = runner.invoke(
        app, [*base, "--prices", str(prices), "--exposed-to", market_entity, "--min-corr", "0.3"]
    )
    assert res.exit_code == 0, res.stderr
    exposed = json.loads(res.stdout)
    u = exposed["universe"]
    assert u["exposed_to"] == market_entity and u["min_corr"] == 0.3
    assert u["labelled_states"] == everyone["universe"]["labelled_states"]
    kept = exposed["states"]["stress"] + exposed["states"]["calm"]
    # States without a full window and those that moved apart from the market are left out.
    assert kept == u["kept"] and 0 < kept < u["labelled_states"] - u["no_full_window"]
    # Without prices there is nothing to measure exposure on; an unknown entity is refused.
    for extra, message in (
        (["--exposed-to", market_entity], "needs --prices"),
        (["--prices", str(prices), "--exposed-to", "NOPE"], "'NOPE' has no valid prices"),
    ):
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 2 and message in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1


def test_evaluate_uses_the_library_the_build_used(tmp_path: Path, market_dir: Path, market) -> None:
    """A build with its own --scenarios folder is evaluated against that library."""
    import shutil

    from stabfrag.config import BuildConfig, packaged
    from stabfrag.engine import loop

    library = tmp_path / "library"
    shutil.copytree(packaged("scenario_library"), library)
    own = library / "synthetic.toml"
    # A scenario that only this library has: the shipped library cannot describe it.
    own.write_text(
        own.read_text().replace('id = "SCN_EQ_CRASH_HIGH"', 'id = "SCN_HOUSE_CRASH_HIGH"', 1)
    )
    assert "SCN_HOUSE_CRASH_HIGH" in own.read_text()
    out = tmp_path / "out"
    last = market.prices["date"].max()
    config = BuildConfig(prices=market_dir / "prices.parquet", out=out, scenarios=library)
    loop.run(config, [last - dt.timedelta(days=28 * k) for k in range(6)][::-1] + [last])
    labels = tmp_path / "labels.csv"
    labels.write_text(f"start,end,label\n2000-01-01,{last},calm\n")
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--out",
            str(out),
            "--labels",
            str(labels),
            "--prices",
            str(market_dir / "prices.parquet"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stderr
    import json

    report = json.loads(res.stdout)
    assert report["built_with"]["scenario_library"] == str(library)
    assert report["built_with"]["model_dir"] == "shipped"


def test_plot_writes_roc_episodes_and_a_page(built, market_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("vl_convert", reason="--plot needs the [plot] extra")
    plots = tmp_path / "plots"
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--out",
            str(built),
            "--labels",
            str(market_dir / "labels.csv"),
            "--plot",
            str(plots),
        ],
    )
    assert res.exit_code == 0, res.stderr
    for name in ("roc.png", "episodes.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (plots / "ic.png").exists()  # who gets hurt needs --prices
    page = (plots / "evaluate.html").read_text()
    assert '"title": "State ROC"' in page and "joint-stab-fragility-v4 (built)" in page
    assert "<script src" not in page  # the charts' JavaScript inlined: works offline


def test_plot_with_prices_draws_the_ic_over_time(built, market_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("vl_convert", reason="--plot needs the [plot] extra")
    plots = tmp_path / "plots"
    args = ["evaluate", "--out", str(built), "--labels", str(market_dir / "labels.csv")]
    res = runner.invoke(
        app, [*args, "--prices", str(market_dir / "prices.parquet"), "--plot", str(plots)]
    )
    assert res.exit_code == 0, res.stderr
    assert (plots / "ic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (plots / "evaluate.html").read_text()
    assert "Who gets hurt: within-date rank IC" in page and "who: rank IC before falls" in page
    assert "who gets hurt:" in res.stdout and "vol_63 alone" in res.stdout
    # Which: what the built model names each labelled shock type, beside the figures.
    assert "Which: what joint-stab-fragility-v4 (built) names each episode" in page
    assert "<td>EQUITY_CRASH</td><td>EQUITY_CRASH " in page


def test_plot_without_the_extra_is_one_line(
    built, market_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "vl_convert", None)  # as if the extra were not installed
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--out",
            str(built),
            "--labels",
            str(market_dir / "labels.csv"),
            "--plot",
            str(tmp_path / "p"),
        ],
    )
    assert res.exit_code == 2
    assert res.stderr.strip() == "stabfrag: --plot needs vl-convert: pip install 'stabfrag[plot]'"


def test_the_blocked_analog_search_equals_brute_force() -> None:
    """Date-ordered, blocked, float32: the same neighbours as the plain definition, with
    missing states nobody's neighbour."""
    rng = np.random.default_rng(4)
    n = 700
    v = rng.normal(size=(n, 8))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v[5] = np.nan
    dates = (np.datetime64("2001-01-01") + rng.integers(0, 3000, n)).astype("datetime64[D]")
    stress = rng.random(n) < 0.3
    queries = np.sort(rng.choice(n, 300, replace=False))
    got = analogs(v, dates, stress, queries, k=5, gap_days=100)
    days = dates.astype(np.int64)
    for i, q in enumerate(got.queries):  # the plain definition, one query at a time
        sims = v @ v[q]
        ok = (np.abs(days - days[q]) >= 100) & np.isfinite(sims)
        if not np.isfinite(v[q]).all():
            ok[:] = False
        best = np.argsort(-np.where(ok, sims, -np.inf), kind="stable")[: min(5, ok.sum())]
        assert got.found[i] == len(best)
        assert got.hits[i] == stress[best].sum()


def test_evaluate_with_profiles_scores_the_branch_as_a_build_with_it(
    built, market_dir: Path, tmp_path: Path
) -> None:
    """--profiles re-scores the built model without and with the branch: without equals
    the build itself, with equals a build that read the same profiles."""
    from stabfrag.analysis.evaluate import evaluate
    from stabfrag.config import BuildConfig
    from stabfrag.engine import loop
    from stabfrag.model.bundle import DEFAULT_JOINT
    from stabfrag.profiles.run import ProfileConfig, build_profiles
    from stabfrag.sinks.dataset import partitions

    dates = tuple(partitions(built))
    prices = market_dir / "prices.parquet"
    build_profiles(ProfileConfig(prices=prices, out=tmp_path / "p", dates=dates))
    profiles = tmp_path / "p" / "profiles.parquet"
    with_out = tmp_path / "with"
    loop.run(
        BuildConfig(
            prices=prices,
            entities=market_dir / "entities.parquet",
            profiles=profiles,
            out=with_out,
            weights={"prof": 0.25},  # the default model gives the branch none
        ),
        list(dates),
    )
    labels = market_dir / "labels.csv"
    common = {"prices": prices, "compare": []}
    import importlib.util

    plots = tmp_path / "plots" if importlib.util.find_spec("vl_convert") else None
    scored = evaluate(
        built,
        labels,
        profiles=profiles,
        profile_weights=(0.25, 1.0),
        plot=plots,
        **common,  # type: ignore[arg-type]
    )
    reference = evaluate(with_out, labels, **common)  # type: ignore[arg-type]
    built_name = f"{DEFAULT_JOINT} (built)"
    figures = scored["figures"]
    assert figures[f"{DEFAULT_JOINT} without profiles"] == figures[built_name]
    assert figures[f"{DEFAULT_JOINT} + profiles (prof=0.25)"] == reference["figures"][built_name]
    assert figures[f"{DEFAULT_JOINT} + profiles (prof=1)"] != figures[built_name]
    # Who gets hurt is scored for each weight too, as a build with the branch ranks.
    who = scored["who"]
    assert who[f"{DEFAULT_JOINT} without profiles"] == who[built_name]
    assert who[f"{DEFAULT_JOINT} + profiles (prof=0.25)"] == reference["who"][built_name]
    assert who[f"{DEFAULT_JOINT} + profiles (prof=1)"]["ic"] != who[built_name]["ic"]
    branch = scored["profile_branch"]
    assert branch["weights"] == [0.25, 1.0] and branch["calm_states"] > 0
    # Without --profile-weights, a model that gives the branch none is scored at a few.
    tried = evaluate(built, labels, profiles=profiles, **common)  # type: ignore[arg-type]
    assert tried["profile_branch"]["weights"] == [0.05, 0.1, 0.25]
    assert (
        tried["figures"][f"{DEFAULT_JOINT} + profiles (prof=0.25)"]
        == (figures[f"{DEFAULT_JOINT} + profiles (prof=0.25)"])
    )
    moves = branch["prof=0.25"]
    assert (
        len(moves["nearest"]) == 10 and moves["nearest"][0]["move"] >= moves["furthest"][0]["move"]
    )


def test_roc_passes_tied_scores_together() -> None:
    """All-equal scores draw the diagonal (area 0.5, as their AUC); ties split no curve."""
    from stabfrag.analysis.metrics import auc
    from stabfrag.analysis.plots import roc_curve

    rng = np.random.default_rng(0)
    positive = rng.random(500) < 0.3
    for scores in (np.ones(500), np.round(rng.random(500), 1) + positive * 0.2):
        fpr, tpr = roc_curve(scores, positive)
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        assert area == pytest.approx(auc(scores, positive), abs=1e-9)
        assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1


def test_who_lines_keep_their_columns_with_long_score_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A profile weight's score name is longer than a model's: every line's figures still
    end where the header's do."""
    from stabfrag.cli.analysis import _print_who

    row = {"ic": 0.2, "ic_before_falls": 0.3, "dates": 10, "fall_dates": 2}
    _print_who(
        {
            "definition": "d",
            "vol_21 alone": {**row, "share_of_dates_above_vol_21": 0.0},
            "joint-stab-fragility-v4 + profiles (prof=0.25)": {
                **row,
                "share_of_dates_above_vol_21": 0.5,
            },
        }
    )
    header, *lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 2
    assert {len(line) for line in lines} == {len(header)}
    assert all(line.split()[-5] == "0.200" for line in lines)


def test_evaluate_refuses_profiles_of_another_basis(
    built: Path, market_dir: Path, tmp_path: Path
) -> None:
    """Profiles made in the default model's basis (v3's stab encoder) mean nothing beside
    v2's states: evaluate refuses them in one line, as a build does."""
    from stabfrag.analysis.evaluate import evaluate
    from stabfrag.config import BuildConfig
    from stabfrag.engine import loop
    from stabfrag.errors import InputError
    from stabfrag.profiles.run import ProfileConfig, build_profiles
    from stabfrag.sinks.dataset import partitions

    prices = market_dir / "prices.parquet"
    dates = tuple(partitions(built))[-2:]
    build_profiles(ProfileConfig(prices=prices, out=tmp_path / "p", dates=dates))
    v2 = tmp_path / "v2"
    loop.run(BuildConfig(prices=prices, out=v2, model="joint-stab-fragility-v2"), list(dates))
    with pytest.raises(InputError, match="basis of num-stab-core-v3"):
        evaluate(v2, market_dir / "labels.csv", profiles=tmp_path / "p" / "profiles.parquet")
