"""The heap thresholds: set where glibc is the C library, and by every command."""

from __future__ import annotations

import platform

import pytest
from typer.testing import CliRunner

from stabfrag import allocator
from stabfrag.cli import app

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_glibc_accepts_every_threshold() -> None:
    allocator.tune_allocator.cache_clear()
    assert allocator.tune_allocator() is True


def test_a_command_sets_the_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr("stabfrag.cli.common.tune_allocator", lambda: calls.append(1))
    res = CliRunner().invoke(app, ["scenarios", "list", "--help"])
    assert res.exit_code == 0, res.output
    assert calls == [1]


def test_without_a_c_library_nothing_is_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    allocator.tune_allocator.cache_clear()
    monkeypatch.setattr(allocator.ctypes.util, "find_library", lambda name: None)
    try:
        assert allocator.tune_allocator() is False
    finally:
        allocator.tune_allocator.cache_clear()
