"""``memphis-fast bench``: memphis-fast, memphis-py 1.3.1, nats-py, a raw-socket reference
client and (when ``go`` is on PATH) the official Go client memphis.go and nats.go, on the same
broker, in the same run.

Every (client, path, run) is a fresh process (see ``runner_common``; the Go peers are one Go
program, see ``runner_go``) on a fresh station (memory storage, or file storage with
``--storage``); runs are interleaved (run 1 of every client and path, then run 2, ...) so that
drift on a shared machine hits every client alike. After each run the bench reads the
station's streams (and, for consume paths, the consumer group's durables) and fails the run if
a single message is missing. Reported figures are medians over the runs.

Output: the report on stdout (on stderr with ``--json -``, which puts the JSON on stdout);
files (JSON, chart, the report as text) under ``--out-dir``, by default
``$XDG_CACHE_HOME/memphis-fast/bench`` (``~/.cache/...``), never the current directory unless
asked. An interrupted bench (Ctrl-C, SIGTERM) reports and saves the runs it finished.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import runner_go

HELP = "benchmark memphis-fast against memphis-py, nats-py, memphis.go, nats.go and a raw-socket client"
DESCRIPTION = """\
Benchmark memphis-fast against memphis-py 1.3.1, nats-py, a minimal raw-socket NATS client and,
when `go` is on PATH, the official Go client memphis.go and nats.go (built once from
benches/go into the user cache), on the same broker in the same run, every message checked.
Without --host a local broker (nats-server with JetStream) is started on a free port and
stopped at the end.

Paths: produce-sync (one ack awaited at a time), produce-nonblocking (pipelined acks),
produce-batch (memphis-fast's produce_batch: one --batch at a time, and pipelined: the raw
reference's pattern, batches of 256 messages, as many in flight as fit its 4,096-message window;
the raw reference runs its pipelined produce again in this path, next to them), consume-ack (an ack per
message; memphis-fast by consume(), fetch(), fetch(prefetch=True), `async for`, and on several
partitions fetch-rr: fetch() with the client's own partition round-robin; the raw reference
also as one-pull: one pull at a time, a fetch loop's pattern), latency (produce -> consume, one message in flight), schema-json
(dicts into a station with a JSON schema), connect (password mode, host localhost),
memory-bound (nats-server SIGSTOPped while a producer keeps calling nonblocking produce).
Stations use memory storage; --storage memory,file adds file-storage stations (the broker's
store in a temporary directory, or --data-dir) for the throughput paths and latency. Every run
checks that its station's streams are on the storage it reports.

Output: the report on stdout; the JSON, the chart (PNG) and the report (.txt) are written
to --out-dir (default: $XDG_CACHE_HOME/memphis-fast/bench, i.e. ~/.cache/memphis-fast/bench),
their paths printed at the end. `--json -` writes the JSON to stdout and the report to stderr.
Progress goes to stderr: a bar on a terminal, one line per run otherwise. Ctrl-C stops the
bench and reports (and saves) the runs already done; exit status 130.

examples:
  memphis-fast bench --quick                       # a few minutes on 2 cores
  memphis-fast bench                               # the full suite (medians of 3 runs)
  memphis-fast bench --clients memphis-fast,raw --paths produce-nonblocking --runs 5
  memphis-fast bench --storage memory,file --paths produce-sync,consume-ack
  memphis-fast bench --quick --json - | jq '.targets'
  memphis-fast bench --out-dir bench-results       # files into ./bench-results
  memphis-fast bench --host broker.example --port 6666 --password memphis
"""

PY_CLIENTS = ("memphis-fast", "memphis-py", "nats-py", "raw")
CLIENTS = PY_CLIENTS + runner_go.CLIENTS
STORAGES = ("memory", "file")
PATHS = (
    "produce-sync",
    "produce-nonblocking",
    "produce-batch",
    "consume-ack",
    "latency",
    "schema-json",
    "connect",
    "memory-bound",
)
#: The paths also run with the other payload sizes and partition counts.
THROUGHPUT_PATHS = ("produce-sync", "produce-nonblocking", "produce-batch", "consume-ack")
#: The paths that also run on the other storage types.
STORAGE_PATHS = (*THROUGHPUT_PATHS, "latency")
RUNNERS = {
    "memphis-fast": "runner_memphis_fast.py",
    "memphis-py": "runner_memphis_py.py",
    "nats-py": "runner_natspy.py",
    "raw": "runner_raw.py",
}
#: (client, path) -> variants; a pair that is missing is not applicable (no schemas in nats-py).
VARIANTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("memphis-fast", "produce-sync"): ("",),
    ("memphis-fast", "produce-nonblocking"): ("",),
    # one batch awaited at a time, and two batches in flight
    ("memphis-fast", "produce-batch"): ("", "pipelined"),
    ("memphis-fast", "consume-ack"): ("consume", "fetch", "fetch-prefetch"),
    ("memphis-fast", "latency"): ("",),
    ("memphis-fast", "schema-json"): ("",),
    ("memphis-fast", "connect"): ("",),
    ("memphis-fast", "memory-bound"): ("",),
    ("memphis-py", "produce-sync"): ("",),
    # memphis-py's two ways: tasks polled until drained, or concurrent_task_limit (best of both).
    ("memphis-py", "produce-nonblocking"): ("", "limit"),
    ("memphis-py", "consume-ack"): ("fetch", "consume"),
    ("memphis-py", "latency"): ("",),
    ("memphis-py", "schema-json"): ("",),
    ("memphis-py", "connect"): ("",),
    ("memphis-py", "memory-bound"): ("",),
    ("nats-py", "produce-sync"): ("",),
    ("nats-py", "produce-nonblocking"): ("",),
    ("nats-py", "consume-ack"): ("",),
    ("nats-py", "latency"): ("",),
    ("nats-py", "connect"): ("",),
    ("raw", "produce-sync"): ("",),
    ("raw", "produce-nonblocking"): ("",),
    # the same pipelined publish again, run beside memphis-fast's produce_batch (its reference:
    # the machine's speed drifts between paths, see report._reference)
    ("raw", "produce-batch"): ("pipelined",),
    # one-pull: one pull at a time, as a fetch() loop without prefetch (that pattern's ceiling)
    ("raw", "consume-ack"): ("", "one-pull"),
    ("raw", "latency"): ("",),
    ("raw", "connect"): ("",),
    **runner_go.VARIANTS,
}
PRODUCE_PATHS = ("produce-sync", "produce-nonblocking", "produce-batch", "schema-json", "memory-bound")
SCHEMA_NAME = "bench-orders"
JSON_SCHEMA = """{
  "type": "object",
  "properties": {
    "id": {"type": "integer", "minimum": 0},
    "customer": {"type": "string", "maxLength": 64},
    "items": {"type": "array", "items": {"type": "object",
      "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
      "required": ["sku", "qty"]}},
    "total": {"type": "number"},
    "paid": {"type": "boolean"}
  },
  "required": ["id", "customer", "items", "total"]
}"""
DEFAULT_MESSAGES = 100_000
QUICK_MESSAGES = 50_000
LIMIT_VARIANT_TASKS = 1000  # memphis-py's concurrent_task_limit in the "limit" variant
MEMPHIS_PY_CONNECTS = 5  # memphis-py (and memphis.go) sleep 1 s in every connect to "localhost"
SLOW_CONNECT_CLIENTS = ("memphis-py", "memphis-go")


def has_async_for() -> bool:
    """memphis-fast's consumer supports ``async for msg in consumer``."""
    from ..consumer import Consumer

    return hasattr(Consumer, "__aiter__")


def variants(client: str, path: str, partitions: int = 1) -> tuple[str, ...]:
    """The variants the bench runs of (client, path); empty when the client lacks the path.

    memphis-fast's consume-ack adds ``async-for`` (``async for msg in consumer``) and, on
    several partitions, ``fetch-rr``: fetch() with the client's own partition round-robin and a
    fixed batch size, where ``fetch`` names the partition and asks for at most what is left on
    it, as the Go peers do."""
    out = VARIANTS.get((client, path), ())
    if (client, path) == ("memphis-fast", "consume-ack"):
        if has_async_for():
            out = (*out, "async-for")
        if partitions > 1:
            out = (*out, "fetch-rr")
    return out


def default_out_dir() -> Path:
    """Where the bench's files go without --out-dir: the user cache, not the current directory."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memphis-fast" / "bench"


class UsageError(Exception):
    """A wrong argument: reported in one line, exit code 2."""


class BenchError(Exception):
    """The bench cannot run (broker unreachable, bad credentials): exit code 1."""


def _csv(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        for t in items:
            if t not in choices:
                raise argparse.ArgumentTypeError(f"unknown {t!r} (choose from {', '.join(choices)})")
        return list(dict.fromkeys(items))

    return parse


def _int_list(lo: int, hi: int) -> Callable[[str], list[int]]:
    def parse(text: str) -> list[int]:
        out = []
        for t in text.split(","):
            try:
                v = int(t.strip())
            except ValueError:
                raise argparse.ArgumentTypeError(f"not an integer: {t.strip()!r}")
            if not lo <= v <= hi:
                raise argparse.ArgumentTypeError(f"{v} is out of range ({lo}..{hi})")
            out.append(v)
        return list(dict.fromkeys(out))

    return parse


def _positive(lo: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}")
        return v

    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("broker (default: start a local broker on a free port)")
    g.add_argument("--host", help="an existing broker's host (no host: a local broker is started)")
    g.add_argument("--port", type=_positive(1), default=None, help="its port (default 6666)")
    g.add_argument("--user", default="root", help="Memphis user (default root)")
    g.add_argument("--password", default=None, help="password (password mode)")
    g.add_argument("--token", default=None, help="connection token (token mode)")
    g.add_argument("--account-id", type=_positive(1), default=1, help="account id (default 1)")
    g.add_argument("--nats-pid", type=_positive(1), default=None,
                   help="with --host: the pid of a local nats-server, for its CPU and the memory-bound path")
    w = p.add_argument_group("workload")
    w.add_argument("--clients", type=_csv(CLIENTS), default=None,
                   help=f"comma-separated clients (default: {','.join(CLIENTS)}; memphis-go and nats-go need `go` "
                   "on PATH and are skipped, with the reason, without it)")
    w.add_argument("--paths", type=_csv(PATHS), default=None,
                   help=f"comma-separated paths (default: all: {','.join(PATHS)})")
    w.add_argument("--messages", type=_positive(100), default=None,
                   help=f"messages per throughput run (default {DEFAULT_MESSAGES:,}; --quick {QUICK_MESSAGES:,}); "
                   "sync produce uses 1/10, latency 1/50, schema-json 1/10 (memphis-py 1/100); memphis-py's pipelined "
                   "produce and consume 1/4")
    w.add_argument("--payload", type=_int_list(1, 8 * 1024 * 1024), default=None,
                   help="payload sizes in bytes; the first is the base (default 128,1024; --quick 128)")
    w.add_argument("--partitions", type=_int_list(1, 64), default=None,
                   help="partition counts; the first is the base (default 1,3; --quick 1)")
    w.add_argument("--storage", type=_csv(STORAGES), default=None,
                   help="station storage types; the first is the base, the others run "
                   f"{','.join(STORAGE_PATHS)} with the base payload on every partition count (default memory)")
    w.add_argument("--data-dir", type=Path, default=None,
                   help="the local broker's JetStream directory for file storage (default: a temporary directory, "
                   "removed at the end; put it on the disk you want to measure)")
    w.add_argument("--runs", type=_positive(1), default=None,
                   help="runs per client and path; medians are reported (default 3; the goals are meant for >= 3)")
    w.add_argument("--batch", type=_positive(1), default=1000, help="produce_batch / fetch / consume batch size (default 1000)")
    w.add_argument("--quick", action="store_true",
                   help="a small variant: 50k messages, 128 B, 1 partition, 3 runs")
    w.add_argument("--timeout", type=_positive(5), default=None, help="seconds before a run is killed (default: by size)")
    o = p.add_argument_group("output (default: the report on stdout; bench-<time>.json/.png/.txt in --out-dir)")
    o.add_argument("--out-dir", type=Path, default=None, metavar="DIR",
                   help="directory of the JSON, chart and text report (default $XDG_CACHE_HOME/memphis-fast/bench)")
    o.add_argument("--json", dest="json_path", default=None, metavar="PATH",
                   help="write the results here instead (`-`: to stdout, and the report to stderr)")
    o.add_argument("--png", dest="png_path", type=Path, default=None, metavar="PATH", help="write the chart here instead")
    o.add_argument("--no-json", action="store_true", help="do not write JSON")
    o.add_argument("--no-png", action="store_true", help="do not draw the chart")
    o.add_argument("--no-files", action="store_true", help="write no files at all (only the report)")
    o.add_argument("--no-progress", action="store_true",
                   help="no progress (default: a bar on a terminal, one line per run otherwise)")
    o.add_argument("--from-json", type=Path, default=None, metavar="PATH",
                   help="do not run: print the report of an earlier run's JSON (and draw --png, write --json)")


# -- plan ---------------------------------------------------------------------------------------
@dataclass
class Settings:
    clients: list[str]
    paths: list[str]
    messages: int
    payloads: list[int]
    partitions: list[int]
    runs: int
    batch: int
    timeout: float | None
    quick: bool
    storages: list[str] = field(default_factory=lambda: ["memory"])
    #: clients left out, and why (the Go peers without go)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class Job:
    payload: int
    partitions: int
    run: int
    path: str
    client: str
    variant: str
    messages: int
    storage: str = "memory"

    @property
    def name(self) -> str:
        v = f"/{self.variant}" if self.variant else ""
        st = "" if self.storage == "memory" else f"/{self.storage}"
        return f"{self.path} {self.client}{v} {self.payload}B/{self.partitions}p{st} run {self.run}"


def settings_from(args: argparse.Namespace) -> Settings:
    quick = bool(args.quick)
    s = Settings(
        clients=list(args.clients or CLIENTS),
        paths=list(args.paths or PATHS),
        messages=args.messages or (QUICK_MESSAGES if quick else DEFAULT_MESSAGES),
        payloads=list(args.payload or ([128] if quick else [128, 1024])),
        partitions=list(args.partitions or ([1] if quick else [1, 3])),
        runs=args.runs or 3,
        batch=args.batch,
        timeout=args.timeout,
        quick=quick,
        storages=list(args.storage or ["memory"]),
    )
    return s


def messages_for(path: str, client: str, n: int) -> int:
    """Messages of one run. memphis-py gets fewer on its slowest paths (it reaches a steady
    rate within a few thousand messages; the full count would take most of the time budget)."""
    if path == "produce-sync":
        return max(100, n // 10)
    if path == "latency":
        return max(50, n // 50)
    if path == "schema-json":
        return max(100, n // (100 if client == "memphis-py" else 10))
    if client == "memphis-py" and path in ("produce-nonblocking", "consume-ack"):
        return max(100, n // 4)
    return n


def plan(s: Settings) -> list[Job]:
    """Every (configuration, run, path, client, variant). The base configuration (first payload,
    partition count and storage) runs every path; the other payloads and partition counts the
    throughput paths; the other storage types the throughput paths and latency, with the base
    payload on every partition count. Runs are interleaved: run 1 of everything, then run 2;
    within a path the clients run in the listed order on odd runs and in the reverse order on
    even runs, so that a drift of the machine's speed during a run (this kind of VM moves by
    tens of percent within minutes) does not always favour the client that runs first."""
    st0 = s.storages[0]
    configs = [(s.payloads[0], s.partitions[0], st0, list(s.paths))]
    tp = [p for p in s.paths if p in THROUGHPUT_PATHS]
    configs += [(p, s.partitions[0], st0, tp) for p in s.payloads[1:]]
    configs += [(s.payloads[0], k, st0, tp) for k in s.partitions[1:]]
    sp = [p for p in s.paths if p in STORAGE_PATHS]
    configs += [(s.payloads[0], k, st, sp) for st in s.storages[1:] for k in s.partitions]
    jobs = []
    for payload, parts, storage, paths in configs:
        for run in range(1, s.runs + 1):
            for path in paths:
                order = [(client, variant) for client in s.clients for variant in variants(client, path, parts)]
                if run % 2 == 0:
                    order.reverse()
                for client, variant in order:
                    jobs.append(Job(
                        payload, parts, run, path, client, variant, messages_for(path, client, s.messages), storage,
                    ))
    return jobs


# -- broker -------------------------------------------------------------------------------------
@dataclass
class Target:
    host: str
    port: int
    user: str
    password: str
    token: str
    account_id: int
    nats_pid: int | None
    local: Any = None  # the LocalBroker, when we started it
    extra: dict[str, Any] = field(default_factory=dict)

    def nats_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"servers": [f"nats://{self.host}:{self.port}"]}
        if self.token:
            kw["token"] = self.token
        else:
            kw["user"] = f"{self.user}${self.account_id}"
            kw["password"] = self.password
        return kw

    def runner_args(self) -> list[str]:
        a = ["--host", self.host, "--port", str(self.port), "--user", self.user, "--account-id", str(self.account_id)]
        if self.token:
            a += ["--token", self.token]
        else:
            a += ["--password", self.password]
        if self.nats_pid:
            a += ["--nats-pid", str(self.nats_pid)]
        return a


@contextlib.contextmanager
def broker_target(args: argparse.Namespace) -> Iterator[Target]:
    if args.host:
        if args.password is None and args.token is None:
            raise UsageError("with --host, give --password or --token")
        if args.password is not None and args.token is not None:
            raise UsageError("give --password or --token, not both")
        port = args.port or 6666
        try:
            socket.create_connection((args.host, port), timeout=5).close()
        except OSError as exc:
            raise BenchError(f"cannot reach the broker at {args.host}:{port}: {exc.strerror or exc}") from None
        yield Target(args.host, port, args.user, args.password or "", args.token or "", args.account_id, args.nats_pid)
        return
    if args.port is not None or args.nats_pid is not None:
        raise UsageError("--port and --nats-pid need --host (without --host a local broker is started on a free port)")
    from ..broker import LocalBroker
    from ..broker.local import BrokerStartError

    auth = "token" if args.token else "password"
    # Memory-storage stations only: a throw-away store. File storage: a data directory (given, or
    # the broker's temporary one) that the file-storage streams are written to.
    file_storage = "file" in (args.storage or ["memory"])
    kw: dict[str, Any] = {"memory": not file_storage, "auth": auth, "username": args.user, "log_level": "warning"}
    if file_storage and args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        kw["data_dir"] = args.data_dir
    if args.password:
        kw["password"] = args.password
    if args.token:
        kw["token"] = args.token
    broker = LocalBroker(**kw)
    try:
        try:
            broker.start()
        except (BrokerStartError, OSError) as exc:
            raise BenchError(f"could not start the local broker: {exc}") from None
        target = Target(
            broker.host, broker.port, broker.username, broker.password if auth == "password" else "",
            broker.token or "", 1, broker.nats_pid, local=broker,
        )
        if file_storage:
            target.extra["data_dir"] = str(broker.data_dir or "")
        yield target
    finally:
        broker.cleanup()


# -- running ------------------------------------------------------------------------------------
def _child_setup() -> None:  # pragma: no cover - between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the bench
    except Exception:
        pass


class Bench:
    def __init__(self, s: Settings, target: Target, progress: Any, workdir: Path) -> None:
        from .control import Control

        self.s = s
        self.target = target
        self.progress = progress
        self.workdir = workdir
        self.loop = asyncio.Runner()
        self.control = Control(target.nats_kwargs(), target.user)
        self.proc: subprocess.Popen[bytes] | None = None
        self.schema_ready = False

    def open(self) -> None:
        try:
            self.loop.run(self.control.connect())
        except Exception as exc:
            raise BenchError(f"cannot connect to the broker at {self.target.host}:{self.target.port}: {_why(exc)}") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run(self.control.close())
        self.loop.close()

    def kill_child(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.resume_nats()

    def resume_nats(self) -> None:
        if self.target.nats_pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.target.nats_pid, signal.SIGCONT)

    def run_job(self, job: Job) -> dict[str, Any]:
        station = f"bench-{job.path}-{job.client}-{job.variant or 'x'}-{job.run}-{secrets.token_hex(3)}"
        base: dict[str, Any] = {
            "client": job.client, "path": job.path, "variant": job.variant, "payload": job.payload,
            "partitions": job.partitions, "run": job.run, "messages": job.messages, "storage": job.storage,
        }
        needs_station = job.path != "connect"
        t0 = time.monotonic()
        try:
            if needs_station:
                self.setup(job, station)
            res = self.spawn(job, station)
            res.update({"run": job.run, "storage": job.storage, "client": job.client, "variant": job.variant})
            if res.get("ok") and needs_station:
                err = self.verify(job, station, res)
                if err:
                    res["ok"] = False
                    res["error"] = f"verification: {err}"
            res["job_wall_s"] = round(time.monotonic() - t0, 2)  # setup + run + checks
            return res
        except Exception as exc:
            return {**base, "ok": False, "error": f"{type(exc).__name__}: {_why(exc)}"}
        finally:
            if needs_station:
                with contextlib.suppress(Exception):
                    self.loop.run(self.control.delete_station(station))

    def setup(self, job: Job, station: str) -> None:
        from .runner_common import CONSUMER_GROUP, make_payload
        from .runner_raw import preload

        c = self.control
        schema = ""
        if job.path == "schema-json":
            if not self.schema_ready:
                self.loop.run(c.create_schema(SCHEMA_NAME, "json", JSON_SCHEMA))
                self.schema_ready = True
            schema = SCHEMA_NAME
        self.loop.run(c.create_station(station, job.partitions, schema, job.storage))
        if job.path in ("consume-ack", "latency"):
            self.loop.run(c.create_consumer_group(station, CONSUMER_GROUP))
        if job.path == "consume-ack":
            t = self.target
            stored = preload(
                t.host, t.port, station, job.partitions, job.messages, make_payload(job.payload),
                user=f"{t.user}${t.account_id}" if not t.token else "", password=t.password, token=t.token,
            )
            if stored != job.messages:
                raise BenchError(f"preload stored {stored} of {job.messages} messages")

    def spawn(self, job: Job, station: str) -> dict[str, Any]:
        import json

        out = self.workdir / f"result-{os.getpid()}-{secrets.token_hex(4)}.json"
        err_path = self.workdir / "runner-stderr.txt"
        if job.client in runner_go.CLIENTS:
            prefix = runner_go.command(job.client)  # built and checked before the first job
            if isinstance(prefix, runner_go.Skipped):
                raise BenchError(str(prefix))
        else:
            prefix = [sys.executable, str(Path(__file__).with_name(RUNNERS[job.client]))]
        cmd = [
            *prefix, "--path", job.path, "--json-out", str(out),
            *self.target.runner_args(), "--connect-host", "localhost" if self.target.local else self.target.host,
            "--station", station, "--partitions", str(job.partitions), "--payload", str(job.payload),
            "--messages", str(job.messages), "--batch", str(self.s.batch),
        ]
        if job.variant:
            cmd += ["--variant", job.variant]
        if job.client == "memphis-py" and job.variant == "limit":
            cmd[cmd.index("--batch") + 1] = str(LIMIT_VARIANT_TASKS)
        if job.path == "connect" and job.client in SLOW_CONNECT_CLIENTS:
            cmd += ["--connects", str(MEMPHIS_PY_CONNECTS)]
        timeout = self.s.timeout or (60 + job.messages / 500)
        with open(err_path, "wb") as errf:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=errf, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_child_setup if sys.platform.startswith("linux") else None,
            )
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_child()
                return {"client": job.client, "path": job.path, "variant": job.variant, "payload": job.payload,
                        "partitions": job.partitions, "ok": False, "error": f"timed out after {timeout:.0f} s"}
            finally:
                self.proc = None
                if job.path == "memory-bound":
                    self.resume_nats()  # whatever happened to the runner
        tail = err_path.read_text(errors="replace")[-2000:].strip()
        if code != 0 or not out.exists():
            # the last line first (a traceback's exception), then the end of the output
            last = tail.splitlines()[-1] if tail else "(no output)"
            return {"client": job.client, "path": job.path, "variant": job.variant, "payload": job.payload,
                    "partitions": job.partitions, "ok": False,
                    "error": f"runner exited with {code}: {last[:300]}\n{tail[-600:]}"}
        res: dict[str, Any] = json.loads(out.read_text())
        out.unlink()
        res.setdefault("storage", job.storage)
        if not res.get("ok") and res.get("traceback"):
            res["error"] = f"{res.get('error')}\n{res['traceback'][-1500:]}"
        return res

    def verify(self, job: Job, station: str, res: dict[str, Any]) -> str | None:
        """The station's streams on the storage asked for; every message stored (produce) /
        received and acked (consume)."""
        from .runner_common import CONSUMER_GROUP

        c = self.control
        storages = self.loop.run(c.storages(station, job.partitions))
        if storages != {job.storage}:
            return f"the station's streams are on {', '.join(sorted(storages))} storage, not {job.storage}"
        extra = res.get("extra") or {}
        if job.path in PRODUCE_PATHS:
            produced = int(extra.get("produced", res.get("messages") or 0)) if job.path == "memory-bound" else job.messages
            expect = produced + int(extra.get("warmup", 0))
            stored = self._until(lambda: self.loop.run(c.stored(station, job.partitions)), expect)
            if stored != expect:
                return f"{stored} messages stored, expected {expect} ({expect - stored} missing)"
            return None
        if job.path == "latency":
            stored = self.loop.run(c.stored(station, job.partitions))
            if stored != job.messages:
                return f"{stored} messages stored, expected {job.messages}"
        if job.path in ("consume-ack", "latency"):
            st = self.loop.run(c.wait_acked(station, job.partitions, CONSUMER_GROUP, job.messages))
            if st["ack_floor"] != job.messages or st["ack_pending"] or st["pending"]:
                return (
                    f"consumer group: {st['ack_floor']} acked in order of {job.messages}, {st['ack_pending']} "
                    f"delivered but not acked, {st['pending']} never delivered"
                )
            if st["redelivered"]:
                return f"{st['redelivered']} messages were redelivered"
        return None

    @staticmethod
    def _until(read: Callable[[], int], expect: int, timeout: float = 3.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            v = read()
            if v >= expect or time.monotonic() > deadline:
                return v
            time.sleep(0.05)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


# -- metadata -----------------------------------------------------------------------------------
def metadata(s: Settings, target: Target, argv: list[str]) -> dict[str, Any]:
    from importlib import metadata as md

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    cpu = ""
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    nats_version = None
    with contextlib.suppress(Exception):
        from .._server import find_nats_server

        nats_version = subprocess.run(
            [find_nats_server(), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    commit = None
    with contextlib.suppress(Exception):
        repo = Path(__file__).resolve().parents[3]
        if (repo / ".git").exists():
            commit = subprocess.run(
                ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "--", "python", "rust"],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip()
            if dirty:
                commit += " (+ uncommitted changes)"
    from .. import __version__

    versions: dict[str, Any] = {
        "python": platform.python_version(),
        "nats-server": nats_version,
        "memphis-fast": __version__,
        "memphis-fast commit": commit,
        "memphis-py": version("memphis-py"),
        "nats-py": version("nats-py"),
    }
    if any(c in runner_go.CLIENTS for c in s.clients) or any(c in runner_go.CLIENTS for c in s.skipped):
        versions.update(runner_go.versions())
    storage = ", ".join(s.storages)
    if target.local:
        broker = f"local nats-server (stations: {storage} storage"
        if target.extra.get("data_dir"):
            broker += f"; file store in {target.extra['data_dir']}"
        broker += ")"
    else:
        broker = f"{target.host}:{target.port} (stations: {storage} storage)"
    return {
        "command": "memphis-fast bench " + " ".join(shlex.quote(a) for a in argv),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": cpu,
            "mem_gb": round(mem_kb / 1e6, 1),
            "kernel": platform.release(),
            "loadavg_start": list(os.getloadavg()),
        },
        "versions": versions,
        "broker": broker,
        "skipped": dict(s.skipped),
        "settings": {
            "clients": s.clients, "paths": s.paths, "messages": s.messages, "payloads": s.payloads,
            "partitions": s.partitions, "storages": s.storages, "runs": s.runs, "batch": s.batch, "quick": s.quick,
            "stations": f"{storage} storage, a fresh station per run",
        },
    }


# -- entry point --------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UsageError as exc:
        sys.stderr.write(f"memphis-fast bench: error: {exc}\n")
        return 2
    except BenchError as exc:
        sys.stderr.write(f"memphis-fast bench: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\nmemphis-fast bench: interrupted\n")
        return 130


#: The module each client's runner imports, and how to install it.
CLIENT_MODULES = {
    "memphis-fast": ("memphis_fast", "pip install memphis-fast"),
    "memphis-py": ("memphis", "pip install memphis-py==1.3.1"),
    "nats-py": ("nats", "pip install nats-py"),
    "raw": (None, ""),
}


def check_clients(s: Settings, explicit: bool, note: Callable[[str], None]) -> None:
    """Drop clients that are not installed (an error when asked for by name); build the Go
    peers, or say why they are skipped."""
    import importlib.util

    if importlib.util.find_spec("nats") is None:
        raise BenchError("nats-py is needed for the broker and the bench's checks: pip install 'memphis-fast[broker]'")
    keep = []
    go_clients = [c for c in s.clients if c in runner_go.CLIENTS]
    go_ready: Path | runner_go.Skipped | None = None
    if go_clients:
        note("building the Go peers (memphis.go, nats.go) if they are not cached yet ...")
        go_ready = runner_go.build()
    for c in s.clients:
        if c in runner_go.CLIENTS:
            if isinstance(go_ready, runner_go.Skipped):
                s.skipped[c] = go_ready.reason
                note(f"note: {runner_go_name(c)} skipped: {go_ready.reason}")
            else:
                keep.append(c)
            continue
        module, hint = CLIENT_MODULES[c]
        if module is None or importlib.util.find_spec(module) is not None:
            keep.append(c)
        elif explicit:
            raise UsageError(f"client {c} is not installed ({hint})")
        else:
            s.skipped[c] = f"not installed ({hint})"
            note(f"note: {c} is not installed, skipped ({hint})")
    s.clients = keep


def runner_go_name(client: str) -> str:
    return {"memphis-go": "memphis.go (memphis-go)", "nats-go": "nats.go (nats-go)"}.get(client, client)


@dataclass
class Outputs:
    """Where the report and the files go."""

    json_path: Path | None
    json_stdout: bool
    png_path: Path | None
    txt_path: Path | None


def outputs(args: argparse.Namespace, stamp: str) -> Outputs:
    json_stdout = args.json_path == "-"
    if args.no_files:
        return Outputs(None, json_stdout, None, None)
    out_dir: Path = args.out_dir or default_out_dir()
    stem = out_dir / f"bench-{stamp}"
    json_path = None
    if not args.no_json and not json_stdout:
        json_path = Path(args.json_path) if args.json_path else stem.with_suffix(".json")
    png_path = None if args.no_png else (args.png_path or (json_path.with_suffix(".png") if args.json_path and json_path else stem.with_suffix(".png")))
    txt_path = json_path.with_suffix(".txt") if json_path is not None else stem.with_suffix(".txt")
    return Outputs(json_path, json_stdout, png_path, txt_path)


def _outcome(res: dict[str, Any]) -> str:
    """A run's result in a few words, for the progress lines."""
    if not res.get("ok"):
        return "FAILED"
    if res.get("path") in ("latency", "connect") and res.get("lat_p50_us") is not None:
        v = float(res["lat_p50_us"])
        return f"p50 {v / 1000:,.2f} ms" if v >= 10_000 else f"p50 {v:,.1f} us"
    if res.get("msgs_per_s"):
        rate = float(res["msgs_per_s"])
        return f"{rate / 1000:,.1f}k msgs/s" if rate >= 1000 else f"{rate:,.0f} msgs/s"
    if res.get("path") == "memory-bound":
        extra = res.get("extra") or {}
        return f"RSS +{float(extra.get('rss_growth_mb') or 0):.1f} MB while the broker was stopped"
    return "ok"


def _run(args: argparse.Namespace) -> int:
    from .progress import Progress

    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.from_json is not None:
        import json

        try:
            doc = json.loads(args.from_json.read_text())
            saved_meta, saved_runs = doc["meta"], doc["runs"]
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"cannot read {args.from_json}: {exc}") from None
        out = Outputs(
            Path(args.json_path) if args.json_path and args.json_path != "-" else None, args.json_path == "-",
            None if args.no_png else args.png_path, None,
        )
        return render(saved_meta, saved_runs, out)

    s = settings_from(args)
    if args.data_dir is not None and "file" not in s.storages:
        raise UsageError("--data-dir is for file storage: add --storage file (or memory,file)")
    if args.data_dir is not None and args.host:
        raise UsageError("--data-dir is for the local broker (not with --host)")

    def note(text: str) -> None:
        sys.stderr.write(text + "\n")

    check_clients(s, args.clients is not None, note)
    if args.host and not args.nats_pid and "memory-bound" in s.paths:
        # SIGSTOP needs the server's pid: a remote broker cannot be paused from here.
        s.paths.remove("memory-bound")
        if args.paths is not None and "memory-bound" in args.paths:
            raise UsageError("memory-bound needs the local broker, or --nats-pid of the broker's nats-server")
        note("note: memory-bound skipped (it pauses nats-server: needs the local broker or --nats-pid)")
    jobs = plan(s)
    if not jobs:
        raise UsageError("nothing to run: no client implements the selected paths")
    out = outputs(args, stamp)
    argv = sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "bench" else sys.argv[1:]
    progress = Progress(len(jobs), enabled=not args.no_progress)
    runs: list[dict[str, Any]] = []
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="memphis-fast-bench-") as tmp, broker_target(args) as target:
        meta = metadata(s, target, argv)
        if s.runs < 3:
            progress.message("note: fewer than 3 runs: the goals are meant for medians of at least 3")
        bench = Bench(s, target, progress, Path(tmp))
        bench.open()
        old_term = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
        started = time.monotonic()
        try:
            for job in jobs:
                progress.show(job.name)
                res = bench.run_job(job)
                runs.append(res)
                if not res.get("ok"):
                    progress.message(f"FAILED {job.name}: {str(res.get('error')).splitlines()[0][:300]}")
                progress.advance(job.name, _outcome(res))
        except KeyboardInterrupt:
            # Keep what is done: the report and the files show the finished runs.
            interrupted = True
        finally:
            bench.kill_child()
            with contextlib.suppress(KeyboardInterrupt):
                bench.close()
            signal.signal(signal.SIGTERM, old_term)
            progress.close()
        meta["machine"]["loadavg_end"] = list(os.getloadavg())
        meta["seconds"] = round(time.monotonic() - started, 1)
        if interrupted:
            meta["interrupted"] = f"after {len(runs)} of {len(jobs)} runs"
    if interrupted:
        sys.stderr.write(f"\nmemphis-fast bench: interrupted after {len(runs)} of {len(jobs)} runs; reporting those\n")
        if not runs:
            return 130
    code = render(meta, runs, out)
    return 130 if interrupted else code


def render(meta: dict[str, Any], runs: list[dict[str, Any]], out: Outputs) -> int:
    """Print the table, the memory figures and the goals; write the JSON, the chart and the text."""
    from . import report

    st = meta["settings"]
    n_runs = st["runs"]
    storages = st.get("storages") or ["memory"]
    rows = report.aggregate(runs)
    base = report.config_key(st["payloads"][0], st["partitions"][0], storages[0])
    ts = report.targets(rows, base)
    v = meta["versions"]
    lines = [
        f"memphis-fast bench: memphis-fast {v['memphis-fast']} ({v['memphis-fast commit']}), "
        f"memphis-py {v['memphis-py']}, nats-py {v['nats-py']}"
        + (f", memphis.go {v['memphis.go']}, nats.go {v['nats.go']} ({v['go']})" if v.get("memphis.go") and v.get("go") else "")
        + f", {v['nats-server']}, Python {v['python']}",
        f"machine: {meta['machine']['nproc']} CPUs, {meta['machine']['cpu']}; broker: {meta['broker']}",
        f"{n_runs} run(s) per client and path, medians; {meta['seconds']} s; load average "
        f"{meta['machine']['loadavg_start'][0]:.2f} -> {meta['machine']['loadavg_end'][0]:.2f}",
    ]
    if meta.get("interrupted"):
        lines.append(f"INTERRUPTED {meta['interrupted']}: the figures below are of the finished runs only")
    for client, why in (meta.get("skipped") or {}).items():
        lines.append(f"skipped: {client}: {why}")
    text = "\n".join(lines) + "\n" + report.legend_text(rows) + "\n"
    text += report.table(rows) + "\n"
    mem = report.memory_text(rows)
    if mem:
        text += mem + "\n\n"
    text += report.targets_text(ts, base) + "\n"
    fails = report.failures_text(rows)
    if fails:
        text += "\n" + fails + "\n"
    stream = sys.stderr if out.json_stdout else sys.stdout
    stream.write(text)
    files: list[str] = []
    if out.json_path is not None:
        report.write_json(out.json_path, meta, rows, ts, runs)
        files.append(f"JSON: {out.json_path}")
    if out.png_path is not None:
        title = (
            f"memphis-fast bench, {meta['date']}, {meta['machine']['nproc']} CPUs, load {meta['machine']['loadavg_start'][0]:.1f}"
            f"; medians of {n_runs} run(s)"
        )
        try:
            report.chart(out.png_path, rows, title, n_runs)
            files.append(f"chart: {out.png_path}")
        except ImportError:
            files.append("chart: skipped (matplotlib is not installed: pip install matplotlib)")
    if out.txt_path is not None:
        out.txt_path.parent.mkdir(parents=True, exist_ok=True)
        out.txt_path.write_text(text)
        files.append(f"report: {out.txt_path}")
    if files:
        stream.write("\n" + "\n".join(files) + "\n")
    stream.flush()
    if out.json_stdout:
        sys.stdout.write(report.json_text(meta, rows, ts, runs) + "\n")
        sys.stdout.flush()
    return 0 if all(r["ok"] for r in rows) else 1
