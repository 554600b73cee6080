"""Print the figures in ``tests/faults/results/*.json`` as the Markdown table of
docs/RELIABILITY.md: ``.venv/bin/python tests/faults/summary.py``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"

FILES = {
    "kill": "tests/faults/test_kill.py",
    "consumer_restart": "tests/faults/test_consumer_restart.py",
    "stall": "tests/faults/test_stall.py",
    "hostile": "tests/faults/test_hostile.py",
    "soak": "tests/faults/test_soak.py",
    "reports": "tests/faults/test_reports.py",
}


def load() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]


def reported(d: dict[str, Any]) -> str:
    n = d.get("reported", 0)
    kinds = d.get("reported_by_reason") or {}
    if not n:
        return "0"
    return f"{n} (" + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + ")"


def command(test: str) -> str:
    module, _, name = test.partition(".")
    return (
        f"`pytest {FILES.get(module, module)}::{name}`"
        if "[" not in name
        else f'`pytest "{FILES.get(module, module)}::{name}"`'
    )


def recover(d: dict[str, Any]) -> str:
    t = d.get("time_to_recover_s")
    extra = []
    if "downtime_s" in d:
        extra.append(f"down {d['downtime_s']:.1f} s")
    if "detected_after_s" in d and d["detected_after_s"] is not None:
        extra.append(f"detected {d['detected_after_s']:.2f} s")
    s = "-" if t is None else f"{t:.2f} s"
    return s + (f" ({', '.join(extra)})" if extra else "")


def row(d: dict[str, Any]) -> str:
    test = d["test"]
    cells = [
        test.split(".", 1)[1],
        str(d.get("sent", "-")),
        str(d.get("acknowledged", "-")),
        reported(d),
        str(d.get("stored", "-")),
        str(d.get("lost", "-")),
        str(d.get("unreported", "-")),
        str(d.get("duplicates", "-")),
        recover(d),
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    docs = load()
    if not docs:
        print("no results: run `pytest -m faults tests/faults` first", file=sys.stderr)
        return 1
    print("| test | sent | acked | reported | stored | lost | unreported | dup | time to recover |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for d in docs:
        if "sent" in d and "acknowledged" in d:
            print(row(d))
    print()
    for d in docs:
        if "acknowledged" not in d:
            keep = {k: v for k, v in d.items() if k not in ("test", "recorded_at", "full", "first_lines")}
            print(f"- {d['test']}: {json.dumps(keep, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
