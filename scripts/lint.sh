#!/usr/bin/env bash
# cargo fmt --check, clippy -D warnings, ruff, mypy on the public package.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy -q --workspace --all-targets -- -D warnings
.venv/bin/ruff check python tests benches
.venv/bin/mypy python/memphis_fast
