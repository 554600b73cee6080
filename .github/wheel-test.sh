#!/usr/bin/env bash
# The release workflow's test of one downloaded wheel (dist/*.whl, and the sdist if there):
# tests/packaging with the pins of requirements/dev.txt, in a throw-away environment that has
# only pytest (the wheel goes into fresh virtualenvs made by the test itself). The pytest command
# is the one CI here runs (`pytest -m wheel tests/packaging`), given the files instead of building.
# Knobs (see tests/packaging/test_wheel.py): MEMPHIS_FAST_EXPECT_TAGS, MEMPHIS_FAST_BROKER_WITHOUT,
# MEMPHIS_FAST_NO_BROKER.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m venv /tmp/wheel-testenv
pins=$(grep -E '^(pytest|pytest-timeout|pytest-asyncio)==' requirements/dev.txt)
# shellcheck disable=SC2086
/tmp/wheel-testenv/bin/python -m pip install -q --disable-pip-version-check $pins
MEMPHIS_FAST_WHEEL=$(ls dist/*.whl)
export MEMPHIS_FAST_WHEEL
if ls dist/*.tar.gz >/dev/null 2>&1; then
    MEMPHIS_FAST_SDIST=$(ls dist/*.tar.gz)
    export MEMPHIS_FAST_SDIST
fi
"$PYTHON" --version
# --confcutdir: the suite's tests/conftest.py needs the development environment (.venv).
exec /tmp/wheel-testenv/bin/python -m pytest -m wheel tests/packaging --confcutdir tests/packaging -p no:cacheprovider -v -ra
