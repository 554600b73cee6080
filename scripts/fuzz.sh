#!/usr/bin/env bash
# Fuzzing and property tests of the Rust protocol crate (memphis-proto), beyond what CI runs.
#
#   scripts/fuzz.sh            the stable-toolchain runs, long: 2,000,000 fuzz_feed cases and
#                              100,000 proptest cases per property (about 10-20 minutes on
#                              one core of a CI machine)
#   scripts/fuzz.sh quick      what CI runs: 50,000 fuzz_feed cases, 200 proptest cases (~10 s)
#   scripts/fuzz.sh nightly    the cargo-fuzz (libFuzzer) targets in rust/memphis-proto/fuzz/
#                              (`feed`, `wire_text`), 10 minutes each; needs a nightly toolchain
#                              and cargo-fuzz (`rustup toolchain install nightly`,
#                              `cargo install cargo-fuzz`)
#
# Knobs (environment): MEMPHIS_FUZZ_CASES and MEMPHIS_FUZZ_SEED (fuzz_feed: a failing case
# prints its seed, number and bytes; re-run with that seed to reproduce), PROPTEST_CASES (the
# property tests; proptest applies it over the tests' own `cases: 200`), FUZZ_SECONDS (nightly:
# seconds per target).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

mode="${1:-long}"
case "$mode" in
quick)
    MEMPHIS_FUZZ_CASES="${MEMPHIS_FUZZ_CASES:-50000}" \
        cargo test -q -p memphis-proto --test fuzz_feed -- --nocapture
    PROPTEST_CASES="${PROPTEST_CASES:-200}" cargo test -q -p memphis-proto --test props
    ;;
long)
    # Release build: ~10x the cases per second; the checks are assert!s, so they still run.
    MEMPHIS_FUZZ_CASES="${MEMPHIS_FUZZ_CASES:-2000000}" \
        cargo test -q --release -p memphis-proto --test fuzz_feed -- --nocapture
    PROPTEST_CASES="${PROPTEST_CASES:-100000}" cargo test -q --release -p memphis-proto --test props
    ;;
nightly)
    seconds="${FUZZ_SECONDS:-600}"
    cd rust/memphis-proto
    for target in feed wire_text; do
        cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -max_len=65536
    done
    ;;
*)
    echo "usage: scripts/fuzz.sh [quick|long|nightly]" >&2
    exit 2
    ;;
esac
