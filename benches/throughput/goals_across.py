"""One Markdown table of the goals over several ``memphis-fast bench`` runs: per run the ratio of
medians with the median of the per-run paired ratios in brackets (misses in bold), and in how
many runs each goal was met. The goals are recomputed from each JSON's rows with the installed
report code (``report.targets``), so runs recorded before a change of a goal's reference are
judged the same way as later ones where their rows allow it.

    .venv/bin/python benches/throughput/goals_across.py benches/throughput/peers-memory-20261203{a,b,c}.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from memphis_fast.bench import report


def _paired(detail: str) -> str:
    m = re.search(r"median of per-run ratios ([0-9.]+x)", detail)
    return f" ({m.group(1)})" if m else ""


def _cell(t: dict[str, Any]) -> str:
    v = t["value"]
    if v is None:
        return "–"
    if t["unit"] == "x":
        text = f"{v:.2f}x" + _paired(t["detail"])
    elif t["unit"] == "ms":
        text = f"{v:.2f} ms"
    else:
        text = f"{v:.1f} {t['unit']}"
    return text if t["met"] is not False else f"**{text}**"


def table(docs: list[dict[str, Any]]) -> str:
    per_run = []
    for doc in docs:
        rows = doc["results"]
        per_run.append({t["target"] + " " + t["config"]: t for t in report.targets(rows, rows[0]["config"])})
    keys = list(per_run[0])
    head = "| goal | " + " | ".join(f"run {i + 1}" for i in range(len(docs))) + " | met in |"
    lines = [head, "|---|" + "---:|" * len(docs) + "---|"]
    for k in keys:
        ts = [r.get(k) for r in per_run]
        if all(t is None or t["met"] is None for t in ts):
            continue  # not measured in any run (memphis-py, nats-py)
        t0 = next(t for t in ts if t is not None)
        goal = t0["target"]
        if t0["unit"] == "x":
            goal += f" {'≤' if t0.get('below') else '≥'} {t0['goal']}x"
        elif t0["unit"] == "ms":
            goal += f" < {t0['goal']} ms"
        decided = [t for t in ts if t is not None and t["met"] is not None]
        met = sum(1 for t in decided if t["met"])
        cells = " | ".join("–" if t is None else _cell(t) for t in ts)
        lines.append(f"| {goal} | {cells} | {met} of {len(decided)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table([json.loads(Path(p).read_text()) for p in sys.argv[1:]]))
