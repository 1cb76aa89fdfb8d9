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


def _advice() -> tuple[object, object]:
    from numpy._core import multiarray

    return multiarray._get_madvise_hugepage, multiarray._set_madvise_hugepage


def test_numpy_stops_advising_huge_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    get, set_ = _advice()
    monkeypatch.delenv(allocator.HUGEPAGE_ENV, raising=False)
    before = set_(True)  # returns the previous setting
    try:
        assert allocator.no_huge_page_advice() is True
        assert get() is False
    finally:
        set_(before)


def test_the_users_huge_page_choice_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    get, set_ = _advice()
    monkeypatch.setenv(allocator.HUGEPAGE_ENV, "1")
    before = set_(True)
    try:
        assert allocator.no_huge_page_advice() is False
        assert get() is True
    finally:
        set_(before)
