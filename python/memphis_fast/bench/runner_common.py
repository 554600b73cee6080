"""What every benchmark runner shares: its command line, the meter and the result file.

A runner is one client's implementation of the benchmark paths. ``memphis-fast bench`` starts
it as a fresh process per (client, path, run) *by file path*, not with ``-m``: ``-m
memphis_fast.bench.runner_x`` would import the ``memphis_fast`` package (and its Rust core) into
every runner, and imports alone change allocator behaviour and RSS. Run by path, a runner loads
this module, the standard library and its own client, nothing else. (``python -m`` works too,
for debugging.)

The runner writes one JSON object (see :func:`result`) to ``--json-out`` and exits 0 even when
the run failed (``ok: false`` and ``error``); a non-zero exit means the runner itself crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

#: The stations' storage type and the other station options every client's station gets.
PRODUCER_NAME = "bench-producer"
#: The consumer group of the consume paths (its durable is ``bench-cg``).
CONSUMER_GROUP = "bench-cg"
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def make_payload(size: int, seed: int = 0) -> bytes:
    """``size`` bytes of printable, not trivially compressible data."""
    base = bytes((33 + (i * 7 + seed) % 90) for i in range(251))
    return (base * (size // len(base) + 1))[:size]


def memphis_headers(producer: str = PRODUCER_NAME, connection_id: str | None = None) -> dict[str, str]:
    """The two headers every Memphis producer sends (memphis-py's ``produce``)."""
    return {
        "$memphis_producedBy": producer,
        "$memphis_connectionId": connection_id or str(uuid.uuid4()),
    }


def internal_name(name: str) -> str:
    """A station name as the broker stores it (``orders.eu`` -> ``orders#eu``).

    The one deliberate copy of ``memphis_fast._subjects.internal_name``: a runner must not
    import ``memphis_fast`` (see above), so it cannot use that module;
    ``tests/unit/test_unit_subjects.py`` pins the two equal."""
    return name.lower().replace(".", "#")


def stream_names(station: str, partitions: int) -> list[str]:
    """The station's JetStream streams: ``<internal>$1`` ... ``<internal>$N``."""
    base = internal_name(station)
    return [f"{base}${p}" for p in range(1, partitions + 1)]


def nats_cpu_seconds(pid: int | None) -> float | None:
    """CPU time of a process so far (all its threads), or None if unknown/unreadable.

    Summed from ``/proc/<pid>/task/*/schedstat`` (nanoseconds; Go keeps its threads, so none
    of nats-server's time is lost with an exited thread); ``/proc/<pid>/stat`` utime + stime
    counts in clock ticks (10 ms), too coarse for a short run, and is the fallback."""
    if not pid:
        return None
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes() -> int:
    """This process's resident set size now."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return 0


def peak_rss_bytes() -> int:
    """This process's peak RSS (``VmHWM``). Not ``ru_maxrss``: across ``exec`` Linux keeps the
    larger of the old and new address spaces' peaks, so a runner would report its parent's."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of sorted values, nearest-rank."""
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


class Meter:
    """Wall time, this process's CPU (all threads) and nats-server's CPU around a timed section."""

    def __init__(self, nats_pid: int | None) -> None:
        self.nats_pid = nats_pid
        self.wall = 0.0
        self.cpu = 0.0
        self.user = 0.0
        self.sys = 0.0
        self.server_cpu: float | None = None
        self._t0 = self._c0 = 0.0
        self._s0: float | None = None
        self._times0 = os.times()

    def start(self) -> None:
        self._s0 = nats_cpu_seconds(self.nats_pid)
        self._times0 = os.times()
        self._c0 = time.process_time()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = time.process_time() - self._c0
        t1 = os.times()
        self.user = t1.user - self._times0.user  # clock ticks: only a user/kernel split
        self.sys = t1.system - self._times0.system
        s1 = nats_cpu_seconds(self.nats_pid)
        self.server_cpu = None if s1 is None or self._s0 is None else s1 - self._s0


def result(
    args: argparse.Namespace,
    client: str,
    *,
    messages: int = 0,
    meter: Meter | None = None,
    latencies_ns: list[int] | None = None,
    ok: bool = True,
    error: str | None = None,
    acked: int | None = None,
    failed: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run's figures. Rates are over the timed section; MB/s counts payload bytes only."""
    out: dict[str, Any] = {
        "client": client,
        "path": args.path,
        "variant": args.variant or "",
        "payload": args.payload,
        "partitions": args.partitions,
        "ok": ok,
        "error": error,
        "messages": messages,
        "acked": acked,
        "failed": failed,
        "seconds": None,
        "msgs_per_s": None,
        "mb_per_s": None,
        "lat_p50_us": None,
        "lat_p99_us": None,
        "client_cpu_us_per_msg": None,
        "server_cpu_us_per_msg": None,
        "peak_rss_mb": peak_rss_bytes() / 1e6,
        "extra": extra or {},
    }
    if meter is not None and messages > 0 and meter.wall > 0:
        out["seconds"] = meter.wall
        out["msgs_per_s"] = messages / meter.wall
        out["mb_per_s"] = messages * args.payload / meter.wall / 1e6
        out["client_cpu_us_per_msg"] = meter.cpu / messages * 1e6
        if meter.user + meter.sys > 0:
            # the kernel's share of the client's CPU (loopback TCP is processed in the sender)
            out["client_sys_share"] = meter.sys / (meter.user + meter.sys)
        if meter.server_cpu is not None:
            out["server_cpu_us_per_msg"] = meter.server_cpu / messages * 1e6
    if latencies_ns:
        lat = sorted(latencies_ns)
        p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        out["lat_p50_us"] = None if p50 is None else p50 / 1000
        out["lat_p99_us"] = None if p99 is None else p99 / 1000
    return out


def failure(args: argparse.Namespace, client: str, error: str, **kw: Any) -> dict[str, Any]:
    return result(args, client, ok=False, error=error, **kw)


def build_parser(client: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"runner ({client})", description=f"One benchmark path of the {client} client."
    )
    p.add_argument("--path", required=True)
    p.add_argument("--variant", default="")
    p.add_argument("--json-out", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--connect-host", default="localhost", help="host for the connect path")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", default="root")
    p.add_argument("--password", default="")
    p.add_argument("--token", default="")
    p.add_argument("--account-id", type=int, default=1)
    p.add_argument("--station", default="")
    p.add_argument("--partitions", type=int, default=1)
    p.add_argument("--payload", type=int, default=128)
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=1000, help="batch size (produce-batch, consume)")
    p.add_argument("--nats-pid", type=int, default=0)
    p.add_argument("--connects", type=int, default=20)
    p.add_argument("--stop-seconds", type=float, default=2.0, help="memory-bound: how long nats-server stays stopped")
    return p


def nats_user(args: argparse.Namespace) -> str:
    """The NATS user a Memphis SDK logs in as in password mode (``<user>$<account>``)."""
    return f"{args.user}${args.account_id}"


Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]


def main(client: str, handlers: dict[str, Handler], argv: list[str] | None = None) -> int:
    """Parse the runner's arguments, run the path, write the result file."""
    args = build_parser(client).parse_args(argv)
    handler = handlers.get(args.path)
    if handler is None:
        res = failure(args, client, f"path {args.path!r} is not implemented by {client}")
        res["unsupported"] = True
    else:
        try:
            # Blocking runners (the raw client) use ``async def`` handlers that never await.
            res = asyncio.run(handler(args))
        except Exception as exc:  # the result file carries the failure; the parent reports it
            res = failure(args, client, f"{type(exc).__name__}: {exc}")
            res["traceback"] = traceback.format_exc()
    with open(args.json_out, "w", encoding="utf-8") as f:
        json.dump(res, f)
    return 0


def write_line(text: str) -> None:
    sys.stderr.write(text + "\n")
