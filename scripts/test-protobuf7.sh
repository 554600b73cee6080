#!/usr/bin/env bash
# Re-runs the schemaverse tests (tests/schema, tests/schema_e2e) under the newest protobuf, which the main .venv
# cannot hold: memphis-py needs protobuf < 6.30 (it calls MessageFactory.GetPrototype, defect B19),
# memphis-fast must work on both. protobuf goes into .venv-pb7 (pip --target) and is put in front
# of the main .venv with PYTHONPATH; the tests assert that this exact version is the one loaded.
# Extra arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PB7_VERSION="${PB7_VERSION:-7.36.2}"
TARGET=.venv-pb7

installed="$(PYTHONPATH="$TARGET" .venv/bin/python -c 'import google.protobuf as p; print(p.__version__)' 2>/dev/null || true)"
if [ "$installed" != "$PB7_VERSION" ]; then
    rm -rf "$TARGET"
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target "$TARGET" "protobuf==$PB7_VERSION"
fi

PYTHONPATH="$PWD/$TARGET${PYTHONPATH:+:$PYTHONPATH}" MEMPHIS_FAST_EXPECT_PROTOBUF="$PB7_VERSION" \
    .venv/bin/python -m pytest tests/schema tests/schema_e2e -q -p no:cacheprovider "$@"
