"""Where ``fetch()`` loses time on a multi-partition station: memphis-fast's fetch loop in four
forms, interleaved with the raw reference client, on 1 and 3 partitions, with the bench's own
setup and checks (``memphis_fast.bench.cli.Bench``).

- ``fetch``: the bench's variant: on several partitions the runner names the partition and asks
  for at most what is left on it (as the Go peers do);
- ``fetch-rr``: the client's own round-robin over partitions with a fixed batch size (what a
  plain ``while True: await consumer.fetch(batch_size=1000)`` loop does);
- ``fetch-wait``: as ``fetch-rr``, with ``fetch_idle_ms`` raised to the pull's expiry: fetch()
  without its early return on a pause (the client's behaviour before that rule);
- ``raw``: two pulls in flight per partition.

Each fetch run reports ``fetch_calls``, ``short_fetches`` (calls that returned fewer messages
than asked for) and ``short_fetch_s`` (the wall time spent in them).

    .venv/bin/python benches/throughput/fetch_partitions.py --runs 3 --json benches/throughput/fetch-partitions.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from memphis_fast.bench import cli, report
from memphis_fast.bench.progress import Progress

VARIANTS = (("memphis-fast", "fetch"), ("memphis-fast", "fetch-rr"), ("memphis-fast", "fetch-wait"), ("raw", ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    broker_args = argparse.Namespace(
        host=None, port=None, user="root", password=None, token=None, account_id=1, nats_pid=None,
        storage=["memory"], data_dir=None,
    )  # fmt: skip
    s = cli.Settings(
        clients=["memphis-fast", "raw"], paths=["consume-ack"], messages=a.messages, payloads=[128],
        partitions=[1, 3], runs=a.runs, batch=a.batch, timeout=None, quick=False,
    )  # fmt: skip
    jobs = [
        cli.Job(128, parts, run, "consume-ack", client, variant, a.messages)
        for run in range(1, a.runs + 1)
        for parts in (1, 3)
        for client, variant in VARIANTS
        if not (parts == 1 and variant == "fetch-rr")  # the same as fetch on one partition
    ]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, cli.broker_target(broker_args) as target:
        bench = cli.Bench(s, target, Progress(len(jobs), enabled=False), Path(tmp))
        bench.open()
        try:
            for job in jobs:
                res = bench.run_job(job)
                runs.append(res)
                e = res.get("extra") or {}
                sys.stderr.write(
                    f"{job.name}: {'ok' if res.get('ok') else 'FAILED ' + str(res.get('error'))[:200]} "
                    f"{(res.get('msgs_per_s') or 0) / 1000:.1f}k msgs/s, {res.get('seconds') or 0:.3f} s; "
                    f"fetch calls {e.get('fetch_calls')}, short {e.get('short_fetches')} ({e.get('short_fetch_s')} s)\n"
                )
        finally:
            bench.kill_child()
            bench.close()
    print(report.table(report.aggregate(runs)))
    for parts in (1, 3):
        for client, variant in VARIANTS:
            rs = [r for r in runs if r["partitions"] == parts and r["client"] == client and r.get("variant") == variant]
            if not rs or client == "raw":
                continue
            shorts = [(r.get("extra") or {}).get("short_fetches") for r in rs]
            secs = [(r.get("extra") or {}).get("short_fetch_s") for r in rs]
            print(f"{parts}p {variant}: short fetches per run {shorts}, seconds in them {secs}")
    if a.json:
        a.json.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
