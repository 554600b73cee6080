"""Instructions per message of the codec cases, counted by callgrind: deterministic, so two
builds can be compared on a busy machine where wall-clock timings are noise.

    python benches/codec/instructions.py PKG_DIR [PKG_DIR ...] [--messages N]

Each ``PKG_DIR`` is put first on ``PYTHONPATH`` (an unpacked wheel; ``""`` for the installed
package). For every case the script is run twice under ``valgrind --tool=callgrind``, once
preparing the input only and once also running the case; the difference divided by the
number of messages is the cost per message, FFI and Python objects included.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = [
    "memphis-fast feed (in place)",
    "memphis-fast feed (in place) + headers",
    "memphis-fast js_publish",
    "memphis-fast js_publish_batch",
    "memphis-fast publish(headers=dict)",
    "nats-py Parser",
    "nats-py hpub_cmd",
    "nats-py _send_publish(headers=dict)",
]


def workload(case: str, n: int) -> None:
    """Runs inside valgrind: prepare the input, then (unless ``case`` is empty) run it once."""
    import asyncio
    import gc

    sys.path.insert(0, str(HERE.parent))
    import bench_codec as b

    b.LOOP = asyncio.new_event_loop()
    reads = b.make_stream(n)
    payloads = [b.payload(i) for i in range(n)]
    replies = [f"{b.INBOX}.{i + 1}" for i in range(n)]
    fns = {
        "memphis-fast feed (in place)": lambda: b.fast_in_place(reads),
        "memphis-fast feed (in place) + headers": lambda: b.fast_with_headers(reads),
        "memphis-fast js_publish": lambda: b.enc_fast_js(payloads, replies),
        "memphis-fast js_publish_batch": lambda: b.enc_fast_batch(payloads, replies),
        "memphis-fast publish(headers=dict)": lambda: b.enc_fast_publish_dict(payloads, replies),
        "nats-py Parser": lambda: b.natspy_parse(reads),
        "nats-py hpub_cmd": lambda: b.enc_natspy_hpub(payloads, replies),
        "nats-py _send_publish(headers=dict)": lambda: b.enc_natspy_send_publish(payloads, replies),
    }
    # Warm up both paths (imports, caches, the extension's lazy statics) with a tiny input so
    # that only the per-message work differs between the two runs.
    small_reads, small_p, small_r = b.make_stream(10), payloads[:10], replies[:10]
    b.fast_in_place(small_reads)
    b.fast_with_headers(small_reads)
    b.enc_fast_js(small_p, small_r)
    b.enc_fast_batch(small_p, small_r)
    b.enc_fast_publish_dict(small_p, small_r)
    b.natspy_parse(small_reads)
    b.enc_natspy_hpub(small_p, small_r)
    b.enc_natspy_send_publish(small_p, small_r)
    gc.disable()
    if case:
        fns[case]()


def count(pkg: str, case: str, n: int) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    if pkg:
        env["PYTHONPATH"] = pkg
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(Path(__file__).resolve()),
            "--inner",
            case,
            "--messages",
            str(n),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    m = re.search(r"Collected : (\d+)", proc.stderr)
    assert m, proc.stderr[-2000:]
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pkgs", nargs="*", default=[""])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--cases", default=None, help="comma-separated subset of the cases")
    ap.add_argument("--inner", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=Path("bench-results/instructions.json"))
    args = ap.parse_args()
    if args.inner is not None:
        workload(args.inner, args.messages)
        return
    cases = CASES if args.cases is None else [c for c in CASES if c in args.cases.split(",")]
    table: dict[str, dict[str, float]] = {}
    for pkg in args.pkgs:
        base = count(pkg, "", args.messages)
        table[pkg or "installed"] = {
            case: (count(pkg, case, args.messages) - base) / args.messages for case in cases
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"messages": args.messages, "per_message": table}, indent=2))
    names = list(table)
    width = max(len(c) for c in cases)
    print(f"instructions per message ({args.messages} messages)")
    print(f"{'case':<{width}}  " + "  ".join(f"{Path(n).name:>12}" for n in names))
    for case in cases:
        print(f"{case:<{width}}  " + "  ".join(f"{table[n][case]:>12,.0f}" for n in names))


if __name__ == "__main__":
    main()
