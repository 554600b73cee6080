#!/usr/bin/env bash
# Builds the release artifacts into dist/ (or --out DIR): the sdist and, from it, one stripped
# abi3 wheel (CPython >= 3.11). Needs maturin and ziglang (requirements/wheel.txt) and a Rust
# toolchain with the target installed; no Docker.
#
#   scripts/build-wheels.sh                      # manylinux2014 (glibc 2.17) x86_64 wheel + sdist
#   scripts/build-wheels.sh --target aarch64-unknown-linux-gnu
#   scripts/build-wheels.sh --target x86_64-unknown-linux-musl --compatibility musllinux_1_2
#   scripts/build-wheels.sh --target universal2-apple-darwin   # on macOS (no zig there)
#   scripts/build-wheels.sh --no-sdist | --sdist-only
#
# On Linux the extension is linked by zig (`maturin build --zig`) against glibc 2.17 (or musl),
# whatever the build machine's glibc, so the wheel installs on RHEL/CentOS 7+, Debian 10+,
# Ubuntu 18.04+ and Amazon Linux 2. The cargo build goes to target-wheel/ (CARGO_TARGET_DIR to
# change it), away from target/ and from the `maturin develop` build in python/memphis_fast/.
# Check the result with `python scripts/check-wheel.py dist/*.whl`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

out=dist
target=""
compat=""
wheel=1
sdist=1
while [ "$#" -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --target) target="$2"; shift 2 ;;
        --compatibility) compat="$2"; shift 2 ;;
        --no-sdist) sdist=0; shift ;;
        --sdist-only) wheel=0; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-wheels.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

# maturin from the environment that has requirements/wheel.txt: the project's .venv, else PATH
# (the release workflow installs it with pip into the runner's Python).
# zig is found as `zig` or `python3 -m ziglang` on PATH, so the venv goes first on PATH.
if [ -x .venv/bin/maturin ]; then
    export PATH="$PWD/.venv/bin:$PATH"
fi
MATURIN=maturin
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target-wheel}"
mkdir -p "$out"
# Only this build's files in $out afterwards (check-wheel.py and the tests take dist/*).
rm -f "$out"/memphis_fast-*.whl "$out"/memphis_fast-*.tar.gz

if [ "$wheel" = 1 ]; then
    args=(build --release --strip --out "$out")
    # --sdist: build the sdist, then the wheel from the unpacked sdist (so a file missing from
    # the sdist fails the build instead of the release).
    if [ "$sdist" = 1 ]; then args+=(--sdist); fi
    if [ -n "$target" ]; then args+=(--target "$target"); fi
    case "${target:-$(uname -s)}" in
        *linux*|Linux)
            # zig links against the oldest glibc the tag allows (or musl): no Docker needed.
            args+=(--zig --compatibility "${compat:-manylinux2014}")
            ;;
        *)
            if [ -n "$compat" ]; then args+=(--compatibility "$compat"); fi
            ;;
    esac
    echo "+ $MATURIN ${args[*]}" >&2
    "$MATURIN" "${args[@]}"
fi
if [ "$wheel" = 0 ]; then
    echo "+ $MATURIN sdist --out $out" >&2
    "$MATURIN" sdist --out "$out"
fi
ls -l "$out"
