"""abi3 or one wheel per Python version? Runs ``benches/bench_codec.py`` against two unpacked
wheels of the same commit, alternately, and compares the memphis-fast cases (nats-py's cases
run in the same processes and serve as the noise control: they must come out equal).

Build and unpack the two wheels from a clean checkout of one commit (a git worktree keeps the
shared build untouched)::

    git worktree add --detach /tmp/abi3-wt HEAD && cd /tmp/abi3-wt
    CARGO_TARGET_DIR=/tmp/abi3-target maturin build --release -i python3.11 -o /tmp/wheels/abi3
    # the same without the abi3-py311 feature of pyo3 in rust/memphis-core/Cargo.toml:
    sed -i 's/, features = \\["abi3-py311"\\]//' rust/memphis-core/Cargo.toml
    CARGO_TARGET_DIR=/tmp/abi3-target maturin build --release -i python3.11 -o /tmp/wheels/cp311
    python -m zipfile -e /tmp/wheels/abi3/*.whl /tmp/abi3-pkgs/abi3
    python -m zipfile -e /tmp/wheels/cp311/*.whl /tmp/abi3-pkgs/cp311

Then: ``python benches/codec/abi3_compare.py /tmp/abi3-pkgs/abi3 /tmp/abi3-pkgs/cp311``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench_codec.py"


def run_once(pkg: Path, rounds: int, messages: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        env = dict(os.environ, PYTHONPATH=str(pkg))
        subprocess.run(
            [
                sys.executable,
                str(BENCH),
                "--rounds",
                str(rounds),
                "--messages",
                str(messages),
                "--json",
                str(out),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        data = json.loads(out.read_text())
    core = data["machine"]["memphis_fast_core"]
    assert str(pkg) in core or core in {p.name for p in pkg.rglob("_core*.so")}, core
    return {name: c["median_msgs_per_s"] for name, c in data["cases"].items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("abi3", type=Path, help="unpacked abi3 wheel")
    ap.add_argument("versioned", type=Path, help="unpacked cp311 wheel")
    ap.add_argument("--repeats", type=int, default=4, help="processes per wheel, alternating")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--json", type=Path, default=Path("bench-results/abi3.json"))
    args = ap.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"abi3": [], "cp311": []}
    for _ in range(args.repeats):
        runs["abi3"].append(run_once(args.abi3, args.rounds, args.messages))
        runs["cp311"].append(run_once(args.versioned, args.rounds, args.messages))
    cases = list(runs["abi3"][0])
    table = []
    for case in cases:
        a = statistics.median(r[case] for r in runs["abi3"])
        v = statistics.median(r[case] for r in runs["cp311"])
        table.append({"case": case, "abi3": a, "cp311": v, "cp311_over_abi3": v / a})
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"command": " ".join(sys.argv), "table": table, "runs": runs}, indent=2))
    width = max(len(c) for c in cases)
    print(f"{'case':<{width}}  {'abi3':>12}  {'cp311':>12}  cp311/abi3")
    for row in table:
        print(
            f"{row['case']:<{width}}  {row['abi3']:>12,.0f}  {row['cp311']:>12,.0f}  {row['cp311_over_abi3']:.3f}"
        )


if __name__ == "__main__":
    main()
