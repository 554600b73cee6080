"""Markdown tables for benches/RESULTS.md from a ``memphis-fast bench`` JSON: the goals (every
ratio, with the paired per-run ratio) and, per path, rate and client CPU per message of
memphis-fast, memphis.go, nats.go and the raw reference in every configuration.

    .venv/bin/python benches/throughput/goals_md.py benches/throughput/issue14-latest.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from memphis_fast.bench import report

PEERS = ("memphis-fast", "memphis-go", "nats-go", "raw", "memphis-py", "nats-py")


def _f(v: float | None, digits: int = 0) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def goals(doc: dict[str, Any]) -> str:
    lines = ["| goal | configuration | value | goal | met | detail |", "|---|---|---:|---:|---|---|"]
    for t in doc["targets"]:
        met = {True: "**met**", False: "missed", None: "n/a"}[t["met"]]
        if t["unit"] == "x":
            value = "–" if t["value"] is None else f"{t['value']:.2f}x"
            goal = f"{'≤' if t.get('below') else '≥'} {t['goal']}x"
        elif t["unit"] == "ms":
            value = "–" if t["value"] is None else f"{t['value']:.2f} ms"
            goal = f"< {t['goal']} ms"
        else:
            value = "–" if t["value"] is None else f"{t['value']:.1f} {t['unit']}"
            goal = "bounded"
        cfg = report.config_text(t.get("config") or doc["results"][0]["config"])
        lines.append(f"| {t['target']} | {cfg} | {value} | {goal} | {met} | {t['detail']} |")
    return "\n".join(lines)


def peers(doc: dict[str, Any]) -> str:
    rows = doc["results"]
    configs: list[str] = []
    for r in rows:
        if r["config"] not in configs:
            configs.append(r["config"])
    out = []
    for cfg in configs:
        out.append(f"**{report.config_text(cfg)}**: msgs/s (p50 µs) · client CPU µs/msg · spread of the runs\n")
        out.append("| path | " + " | ".join(report.CLIENT_NAMES[c] for c in PEERS) + " |")
        out.append("|---|" + "---:|" * len(PEERS))
        paths = [p for p in report.PATH_ORDER if any(r["config"] == cfg and r["path"] == p for r in rows)]
        for p in paths:
            if p in ("memory-bound", "schema-json", "connect"):
                continue
            vs = [r for r in rows if r["config"] == cfg and r["path"] == p]
            variants = sorted({r["variant"] for r in vs if r["client"] == "memphis-fast"}) or [""]
            for v in variants:
                cells = []
                for c in PEERS:
                    cands = [r for r in vs if r["client"] == c and (c != "memphis-fast" or r["variant"] == v)]
                    r = max(cands, key=lambda x: report.merit(x) or 0.0) if cands else None
                    if r is None or not r["ok"]:
                        cells.append("–" if r is None else "FAILED")
                        continue
                    fig = f"{_f(r['lat_p50_us'], 1)} µs" if p == "latency" else _f(r["msgs_per_s"])
                    if p == "produce-sync":
                        fig += f" ({_f(r['lat_p50_us'], 1)} µs)"
                    sp = report.spread(r)
                    name = f" *{r['variant']}*" if r["variant"] and c != "memphis-fast" else ""
                    cells.append(
                        f"{fig}{name} · {_f(r['client_cpu_us_per_msg'], 2)} · {'–' if sp is None else f'{sp * 100:.0f}%'}"
                    )
                label = p + (f" ({v})" if v else "")
                out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    doc = json.loads(Path(sys.argv[1]).read_text())
    print(goals(doc))
    print()
    print(peers(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
