"""Schemaverse engine tests: no network, no broker."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import google.protobuf
import pytest

from memphis_fast.schemaverse import clear_cache

# The tests import schemaverse_helpers by name, whatever pytest's import mode.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


def pytest_report_header() -> str:
    return f"schemaverse: protobuf {google.protobuf.__version__}"


@pytest.fixture(autouse=True)
def _fresh_schema_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()
