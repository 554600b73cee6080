"""Print the figures in ``tests/faults/results/*.json`` as the Markdown table of
docs/RELIABILITY.md: ``.venv/bin/python tests/faults/summary.py``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(os.environ.get("MEMPHIS_FAST_FAULTS_RESULTS") or Path(__file__).parent / "results")

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


#: what the client does, by test (the first matching prefix wins)
DOES = [
    (
        "kill.test_kill_and_restart_mid_stream[sync-msg-id-down-lt",
        "in flight: kept and re-sent after the reconnect (deduplicated); issued while down: buffered, sent on reconnect",
    ),
    (
        "kill.test_kill_and_restart_mid_stream[sync-no-msg-id-down-lt",
        "written before the crash: unknown (connection lost); issued while down: buffered, sent on reconnect",
    ),
    (
        "kill.test_kill_and_restart_mid_stream[nonblocking-msg-id-down-lt",
        "as sync: re-sent with msg_id, buffered while down; the window bounds memory",
    ),
    (
        "kill.test_kill_and_restart_mid_stream[nonblocking-no-msg-id-down-lt",
        "written before the crash: unknown (connection lost) to the failure callback; the rest buffered",
    ),
    (
        "kill.test_kill_and_restart_mid_stream[batch-msg-id-down-lt",
        "a batch in flight is re-sent (msg_id) and its results come back complete",
    ),
    (
        "kill.test_kill_and_restart_mid_stream[batch-no-msg-id-down-lt",
        "batches issued while down are buffered and sent on reconnect",
    ),
    (
        "kill.test_kill_and_restart_mid_stream[",
        "waited out its ack wait in the buffer: not sent (expired before sending), never sent later; "
        "written before the crash: unknown",
    ),
    (
        "consumer_restart.",
        "consumers reconnect and keep pulling; unacked messages are redelivered after max_ack_time_ms",
    ),
    (
        "stall.test_stalled_link_is_detected_and_recovered[pause-msg-id",
        "keepalive (2 missed PINGs) drops the link; msg_id publishes re-sent after the reconnect",
    ),
    (
        "stall.test_stalled_link_is_detected_and_recovered[pause-no-msg-id",
        "keepalive drops the link; what was written is unknown (held bytes may still arrive: some stored)",
    ),
    (
        "stall.test_stalled_link_is_detected_and_recovered[blackhole-msg-id",
        "keepalive drops the link; msg_id publishes re-sent",
    ),
    (
        "stall.test_stalled_link_is_detected_and_recovered[blackhole-no-msg-id",
        "keepalive drops the link; what was written is unknown (dropped by the route: none stored)",
    ),
    ("stall.test_link_that_heals", "nothing: acks arrive late, no reconnect, no failure"),
    (
        "hostile.test_hostile_server_takes_over_a_live_link[",
        "protocol error / timeout / stale link: drop and reconnect; msg_id publishes re-sent to the real broker",
    ),
    (
        "hostile.test_hostile_server_takeover_without_msg_id",
        "what the impostor swallowed is reported unknown (connection lost), never stored",
    ),
    (
        "hostile.test_bytes_injected_into_a_live_link[",
        "protocol error at once: drop and reconnect; in flight: re-sent with msg_id, else unknown",
    ),
    ("soak.", "steady state: RSS flat after warm-up"),
]


def does(test: str) -> str:
    for prefix, text in DOES:
        if test.startswith(prefix):
            return text
    return ""


def row(d: dict[str, Any]) -> str:
    test = d["test"]
    cells = [
        test.split(".", 1)[1].removeprefix("test_"),
        does(test),
        str(d.get("sent", "-")),
        str(d.get("acknowledged", "-")),
        reported(d),
        str(d.get("stored", "-")),
        str(d.get("lost", "-")),
        str(d.get("unreported", "-")),
        str(d.get("duplicates", "-")),
        recover(d),
        command(test),
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    docs = load()
    if not docs:
        print("no results: run `pytest -m faults tests/faults` first", file=sys.stderr)
        return 1
    print(
        "| fault (test) | what the client does | sent | acked | reported | stored | lost "
        "| unreported | dup | time to recover | reproduce |"
    )
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |")
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
