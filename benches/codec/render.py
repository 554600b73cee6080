"""Render a ``bench_codec.py`` JSON result as the Markdown tables of ``benches/RESULTS.md``.

python benches/codec/render.py bench-results/codec.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def render(data: dict[str, Any]) -> str:
    m = data["machine"]
    out = [
        f"Command: `{data['command']}` ({data['messages']:,} messages per round, {data['rounds']} rounds, "
        "cases interleaved within each round, GC off while timing).",
        "",
        f"Machine: {m['cpu']}, {m['cpus']} vCPUs (shared; load average at start "
        f"{m['loadavg_at_start'][0]:.1f}), {m['os']}. CPython {m['python']}, memphis-fast "
        f"{m['memphis_fast']} (`{m['memphis_fast_core']}`, commit {m['git']}), nats-py {m['nats_py']}, "
        f"{m['rustc']}.",
        "",
        "| case | median msgs/s | min .. max |",
        "|---|---:|---:|",
    ]
    for name, c in data["cases"].items():
        out.append(f"| {name} | {c['median_msgs_per_s']:,.0f} | {c['min']:,.0f} .. {c['max']:,.0f} |")
    out += [
        "",
        "| comparison | memphis-fast | nats-py | ratio of medians | median of per-round ratios |",
        "|---|---|---|---:|---:|",
    ]
    for r in data["ratios"]:
        paired = r.get("median_paired_ratio")
        paired_s = f"{paired:.1f}x" if paired is not None else "-"
        ratio = r.get("ratio_of_medians", r.get("ratio"))
        out.append(f"| {r['what']} | {r['ours']} | {r['theirs']} | {ratio:.1f}x | {paired_s} |")
    return "\n".join(out) + "\n"


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "bench-results/codec.json")
    sys.stdout.write(render(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
