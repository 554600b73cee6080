#!/usr/bin/env bash
# Runs every test: the Rust protocol crate (cargo test), the Python suites (pytest) against real
# nats-server processes and local brokers that the tests start on free loopback ports, and the
# schema suites again under the newest protobuf (memphis-py needs protobuf < 6.30 in the main
# environment; memphis-fast must work on both).
# With arguments, only pytest runs, with those arguments (e.g. `scripts/test.sh tests/wire -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi

cargo test -q -p memphis-proto
.venv/bin/python -m pytest -q
# The release wheel: built with zig for manylinux2014, checked, installed into fresh virtualenvs.
.venv/bin/python -m pytest -q -m wheel tests/packaging
bash scripts/test-protobuf7.sh
