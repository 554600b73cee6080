#!/usr/bin/env bash
# Runs every test: the Rust protocol crate (cargo test) and the Python suites (pytest) against
# real nats-server processes that the tests start on free loopback ports.
# Extra arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

cargo test -q -p memphis-proto
.venv/bin/python -m pytest "$@"
