"""Schemaverse engine tests: no network, no broker."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session", autouse=True)
def _expected_protobuf() -> None:
    # scripts/test-protobuf7.sh sets this: prove the run really uses the protobuf it asked for.
    expected = os.environ.get("MEMPHIS_FAST_EXPECT_PROTOBUF")
    if expected and google.protobuf.__version__ != expected:
        pytest.exit(
            f"expected protobuf {expected}, but {google.protobuf.__version__} is loaded "
            f"from {google.protobuf.__file__}",
            returncode=3,
        )


@pytest.fixture(autouse=True)
def _fresh_schema_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()
