"""Hostile inputs, table-driven: nothing leaked, nothing silently wrong, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stabfrag.cli import app

runner = CliRunner()
SECRET = "S3cr3tPa55w0rd"
MALFORMED_DSNS = [
    f"postgresql//root:{SECRET}@127.0.0.1:5432/db",  # no ':' after the scheme
    f"root:{SECRET}@127.0.0.1:5432/db",  # no scheme
    f"postgresql://root:a@{SECRET}@127.0.0.1:5433/db",  # an unencoded '@' in the password
    f"postgresql://root:{SECRET}@127.0.0.1:1/db",  # well formed, nothing listening
    f"host=127.0.0.1 port=1 user=root password={SECRET}",
    f"host=127.0.0.1 port=1 user=root password='{SECRET} x'",
    f"postgresql://root:{SECRET}@127.0.0.1:5432/db?sslmode=bogus",
]


def _leaks(text: str) -> list[str]:
    """Substrings of the secret (5 characters or more) that appear in `text`."""
    return [SECRET[i : i + 5] for i in range(len(SECRET) - 4) if SECRET[i : i + 5] in text]


@pytest.mark.parametrize("dsn", MALFORMED_DSNS)
def test_a_bad_dsn_never_shows_its_password(dsn: str, built: Path, tmp_path: Path) -> None:
    calls = [
        ["db", "init", "--pg-dsn", dsn],
        ["load", "--out", str(built), "--pg-dsn", dsn],
    ]
    for args in calls:
        res = runner.invoke(app, args)
        output = res.stdout + res.stderr
        assert res.exit_code == 2, (args, output)
        assert "Traceback" not in output
        assert not _leaks(output), (args, output)
        assert len(res.stderr.strip().splitlines()) == 1, output
    res = runner.invoke(app, ["db", "init"], env={"STABFRAG_PG_DSN": dsn})
    assert res.exit_code == 2 and not _leaks(res.stdout + res.stderr)


def test_build_refuses_a_bad_dsn_before_it_builds(market_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            "2024-12-31",
            "--prices",
            str(market_dir / "prices.parquet"),
            "--out",
            str(out),
        ],
        env={"STABFRAG_PG_DSN": MALFORMED_DSNS[0]},
    )
    assert res.exit_code == 2 and not _leaks(res.stdout + res.stderr)
    assert not (out / "joint_embeddings").exists()


@pytest.mark.parametrize("as_of", ["2042-12-31", "0001-01-01", "1990-01-01"])
def test_build_outside_the_data_is_refused(as_of: str, market_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            as_of,
            "--prices",
            str(market_dir / "prices.parquet"),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 2, res.stdout
    assert "Traceback" not in res.stdout + res.stderr
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and "holds dates from" in line, line
    assert not (out / "joint_embeddings").exists()
