"""Render tests/cluster/results/*.json as the markdown of docs/cluster-results.md.

    .venv/bin/python tests/cluster/results_table.py > docs/cluster-results.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"

TITLES = {
    "kill_client_node": "1. kill -9 of the node the client is connected to (stream leader elsewhere)",
    "kill_stream_leader": "2. kill -9 of the stream leader (client connected elsewhere)",
    "kill_control_plane_node": "3. kill -9 of the control plane's node while stations/producers/consumers are created",
    "rolling_restart": "4. rolling restart (SIGTERM, restart, healthy; one node at a time) while producing and consuming",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return str(value)


def render() -> str:
    out = [
        "# Cluster fault figures",
        "",
        "Measured by `tests/cluster/` against a 3-node local cluster (`LocalBroker(cluster=3)`,",
        "nats-server 2.10.26, a `replicas=3` station) on a 2-vCPU VM shared with other jobs.",
        "Each run drives the six producer variants at once, injects one fault, and reads the",
        "stream back. Reproduce: `.venv/bin/python -m pytest -m cluster tests/cluster` (CI size:",
        "60 msg/s per variant, 20 s after the fault); `MEMPHIS_FAST_FULL=1` for 300 msg/s and",
        "40 s. Then `.venv/bin/python tests/cluster/results_table.py > docs/cluster-results.md`.",
        "",
        "Columns: *sent* handed to the client; *acked* reported stored (for nonblocking, when the",
        "client build has no per-message success report, inferred after `flush()`: not reported",
        "failed, marked \\*); *failed* reported not stored / unknown / not sent; *stored* distinct",
        "messages in the stream; *dup* extra copies; *lost* acked but not stored (must be 0);",
        "*unrep.* neither stored nor reported (must be 0); *recovery* from the fault to the",
        "acknowledgement of the first message produced after it (*stored at*: to the stream's",
        "timestamp of that message); *outage* the longest pause between two stored messages of",
        "the variant after the fault, from the stream's timestamps (the time to recover).",
        "",
    ]
    # A summary over every run on record.
    totals = {"runs": 0, "sent": 0, "lost": 0, "unreported": 0, "dup_with_id": 0}
    open_items = []
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        if "rows" not in data:
            continue
        totals["runs"] += 1
        for r in data["rows"]:
            totals["sent"] += r["sent"]
            totals["lost"] += r["lost"]
            totals["unreported"] += r["unreported"]
            totals["dup_with_id"] += r["duplicates"] if r["msg_id"] else 0
            if r["msg_id"] and r["mode"] in ("sync", "batch") and r["failed"]:
                open_items.append(
                    f"`{path.stem}`: {r['variant']} {r['failed']} of {r['sent']} reported "
                    f"({', '.join(r['failure_texts'])})"
                )
    out += [
        "## Summary",
        "",
        f"{totals['runs']} fault runs, {totals['sent']} messages: **{totals['lost']} acknowledged messages "
        f"lost, {totals['unreported']} unreported, {totals['dup_with_id']} duplicates with msg_id.**",
        "",
    ]
    if open_items:
        out += [
            "Messages with a msg_id that were reported instead of retried (the issue wants every sync",
            "and batch message with msg_id stored across a stream-leader election; these were in flight",
            "to the node that died, so no 503 came back to retry on):",
            "",
            *[f"- {item}" for item in open_items],
            "",
        ]
    runs = [(key, "", title) for key, title in TITLES.items()]
    runs += [(key, "-full", f"{title} — `MEMPHIS_FAST_FULL=1`") for key, title in TITLES.items()]
    for key, suffix, title in runs:
        path = RESULTS / f"{key}{suffix}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        out += [f"## {title}", ""]
        facts = {k: v for k, v in data.items() if k not in ("rows", "test", "control_plane")}
        out.append("Run: " + ", ".join(f"{k} {v}" for k, v in sorted(facts.items())) + ".")
        out.append("")
        out.append(
            "| producer | msg_id | sent | acked | failed (kinds) | stored | dup | lost | unrep. "
            "| recovery s | stored at s | outage s |"
        )
        out.append("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in data["rows"]:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["failed_by_kind"].items())) or "-"
            acked = f"{r['acked']}{'*' if r['acked_inferred'] else ''}"
            out.append(
                f"| {r['mode']} | {'yes' if r['msg_id'] else 'no'} | {r['sent']} | {acked} | "
                f"{r['failed']} ({kinds}) | {r['stored']} | {r['duplicates']} | {r['lost']} | "
                f"{r['unreported']} | {_fmt(r['recovery_s'])} | {_fmt(r.get('stored_recovery_s'))} | "
                f"{_fmt(r.get('max_store_gap_s'))} |"
            )
        texts: dict[str, int] = {}
        for r in data["rows"]:
            for text, n in r["failure_texts"].items():
                texts[text] = texts.get(text, 0) + n
        if texts:
            out += ["", "Failure texts (most frequent):", ""]
            for text, n in sorted(texts.items(), key=lambda kv: -kv[1])[:4]:
                out.append(f"- {n} × `{text}`")
        cp = data.get("control_plane")
        if cp:
            out += [
                "",
                f"Control plane during the run: {cp['requests']} requests, {cp['failed_requests']} failed, "
                f"answered again {cp['answered_again_s']} s after the kill, slowest request "
                f"{cp['slowest_request_s']} s.",
            ]
        out.append("")
    any_node = RESULTS / "control_plane_any_node.json"
    if any_node.exists():
        data = json.loads(any_node.read_text())
        out += [
            "## The control plane after losing any one node",
            "",
            "`test_control_plane_answers_after_losing_any_node`: kill -9 of each node in turn; time",
            "until station + producer + consumer creation succeed again (2 s attempts, from a client",
            "on a surviving node).",
            "",
            "| node killed | replicas=1 station s | replicas=3 station s |",
            "|---|---:|---:|",
        ]
        for f in data["answered_again_s"]:
            out.append(f"| {f['killed'] + 1} | {f['replicas1_s']} | {f['replicas3_s']} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(render())
