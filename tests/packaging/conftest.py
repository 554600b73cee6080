"""The packaging tests build a release wheel and install it (and its dependencies, from PyPI)
into fresh virtualenvs: minutes of work that a plain ``pytest`` run should not do unasked. They
run when selected by marker (``pytest -m wheel tests/packaging``, as CI does) or when a
prebuilt wheel is given in ``MEMPHIS_FAST_WHEEL``; otherwise they are skipped, saying how."""

from __future__ import annotations

import os

import pytest


def _selected(config: pytest.Config) -> bool:
    markexpr = config.getoption("markexpr", default="") or ""
    return ("wheel" in markexpr and "not wheel" not in markexpr) or bool(os.environ.get("MEMPHIS_FAST_WHEEL"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _selected(config):
        return
    skip = pytest.mark.skip(
        reason="packaging test: run with `pytest -m wheel tests/packaging` (or MEMPHIS_FAST_WHEEL=...)"
    )
    for item in items:
        if item.get_closest_marker("wheel") is not None:
            item.add_marker(skip)
