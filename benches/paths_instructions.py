"""Instructions per message of memphis-fast's public API paths, counted by callgrind.

Wall-clock timings on a small shared VM are noisy; instruction counts are not (much). This
harness answers "did any path get slower?" for a refactor of the client's data path by
counting the instructions the *client process* executes per message on each path.

How it measures
---------------
* ONE local broker (``memphis_fast.broker.LocalBroker``, memory storage, 127.0.0.1, free port)
  runs in its own process for the whole measurement; it is never under valgrind.
* For every path and run, the client -- this same file, run as ``python paths_instructions.py
  client ...`` -- runs under ``valgrind --tool=callgrind`` twice: with ``N`` messages and with a
  small ``N0``. Both runs do the same start-up (interpreter, imports, connect, producer/consumer
  creation, close), so ``(Ir(N) - Ir(N0)) / (N - N0)`` is the steady-state cost of one message
  (``Ir`` = the ``totals:`` line of the callgrind out file; the client is single-threaded -- the
  Rust core starts no threads -- so that is all the client's work). ``N0 > 0`` also keeps
  one-time costs of the first message (lazy set-up) out of the figure.
* The client uses only memphis_fast's public API: ``Memphis().connect``, ``memphis.station``
  (memory storage), ``memphis.producer``, ``producer.produce`` (awaited, or ``nonblocking=True``
  then ``producer.flush()``), ``producer.produce_batch``, ``memphis.consumer``,
  ``consumer.consume(callback)`` / ``consumer.fetch``, ``msg.ack()``, ``consumer.stop_consume``.
  Payloads are 128 bytes.
* Every run gets a fresh station (hence a fresh consumer group). The consume paths' stations
  are filled by this harness (pipelined raw-socket publishes, ``memphis_fast.bench.runner_raw``)
  BEFORE the measured process starts.
* Every run is checked, loudly: produce paths -- the stream holds exactly the produced count
  (JetStream ``STREAM.INFO``); consume paths -- the client saw exactly N messages of 128 bytes,
  and the group's durable (``CONSUMER.INFO``) has acked all N in order, none pending, none
  redelivered. Any failure aborts with exit code 1.
* ``PYTHONHASHSEED=0``; byte code is cached in a private ``PYTHONPYCACHEPREFIX`` (warmed by an
  un-instrumented preflight run of every path), so no run pays for compiling and no ``.pyc``
  is written into the measured tree.
* ``--runs K`` (default 2): per path, the figure is ``(min Ir(N) - min Ir(N0)) / (N - N0)``
  over the K runs (noise only adds instructions); the JSON also holds every run's own figure.

Sizes (callgrind runs CPython ~50x slower; every valgrind run should stay well under ~60 s on
the 2-core VM -- observed 5-24 s each while others compiled; a full ``--runs 2`` takes ~5 min,
``--runs 3`` ~7 min, ``--quick`` ~1 min; a hard limit, ``--timeout``, kills a run)::

    path                    N       N0     (--quick: N / N0)
    produce-sync            2000    200      300 / 100
    produce-nonblocking     20000   2000    3000 / 1000
    produce-batch           20000   2000    3000 / 1000   (batches of 1000)
    consume-ack (consume)   20000   2000    3000 / 1000   (batch_size=1000, ack each)
    consume-ack (fetch)     20000   2000    3000 / 1000   (fetch(batch_size=1000), ack each)

Noise: how many acks or messages arrive per socket read, and so how many event-loop
iterations and Python<->Rust calls a run makes, depends on timing (the broker runs at full
speed, the client at valgrind speed, other processes share the 2 cores). Measured on the
baseline (520315d), two invocations of ``--runs 3``: the produce paths and consume-ack (fetch)
stayed within 0.5 % run to run (produce-sync and produce-nonblocking within 0.05 %);
consume-ack (consume) had one run in three 1.8-2.9 % above the other two; the headline figures
of the two invocations agreed within 0.15 %. So treat differences below ~1 % (~3 % for
consume-ack (consume)) as noise; see ``benches/paths/README.md`` for the figures.

A tree that is edited while it is measured gives garbage (byte code recompiled in one run and
not the other, or different code in N and N0): before each (N, N0) pair the byte-code cache is
re-warmed by an un-instrumented run, and the pair is repeated (up to 3 times) unless the
measured package's files (path, mtime, size) are unchanged across it; if runs measured
different code, the figure (and the spread) comes only from the valid runs of the latest
package (``runs_used``) and ``same_package_in_all_runs`` is false in the JSON; a pair whose
package changed in all 3 attempts is not used. Measure a committed tree (or a worktree of it)
for a final comparison.

Usage::

    .venv/bin/python benches/paths_instructions.py [--paths produce-sync,consume-ack-fetch]
        [--runs 2] [--json benches/paths/x.json] [--python PY] [--pythonpath DIR] [--quick]
        [--compare benches/paths/baseline-520315d.json]
    .venv/bin/python benches/paths_instructions.py --compare BASE.json --results NOW.json

``--pythonpath DIR`` is prepended to the measured process's ``PYTHONPATH`` (measure another
checkout, e.g. ``/work/baseline/python``); by default the broker and the harness's set-up
helpers come from that tree too (``--broker-pythonpath DIR`` takes them from another tree, e.g.
when the measured tree's broker is broken mid-refactor; the broker does not change the
client's counts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAYLOAD_SIZE = 128
BATCH = 1000
CONSUMER_GROUP = "paths-cg"
PRODUCER_NAME = "paths-producer"
#: attempts per (run, path) when the measured package changes during the run
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class PathSpec:
    name: str
    slug: str
    kind: str  # "produce" | "consume"
    n: int
    n0: int
    quick_n: int
    quick_n0: int


PATHS: list[PathSpec] = [
    PathSpec("produce-sync", "produce-sync", "produce", 2000, 200, 300, 100),
    PathSpec("produce-nonblocking", "produce-nonblocking", "produce", 20000, 2000, 3000, 1000),
    PathSpec("produce-batch", "produce-batch", "produce", 20000, 2000, 3000, 1000),
    PathSpec("consume-ack (consume)", "consume-ack-consume", "consume", 20000, 2000, 3000, 1000),
    PathSpec("consume-ack (fetch)", "consume-ack-fetch", "consume", 20000, 2000, 3000, 1000),
]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


BY_NAME: dict[str, PathSpec] = {}
for _p in PATHS:
    BY_NAME[_norm(_p.name)] = _p
    BY_NAME[_p.slug] = _p
BY_NAME["consume"] = BY_NAME["consume-ack-consume"]
BY_NAME["fetch"] = BY_NAME["consume-ack-fetch"]


def make_payload(size: int) -> bytes:
    """``size`` printable bytes (the same as ``runner_common.make_payload``)."""
    base = bytes((33 + (i * 7) % 90) for i in range(251))
    return (base * (size // len(base) + 1))[:size]


# == the measured client ===========================================================================
async def _client(a: argparse.Namespace) -> dict[str, Any]:
    import memphis_fast
    from memphis_fast import Memphis

    try:
        from memphis_fast import Storage  # type: ignore[attr-defined]
    except ImportError:
        from memphis_fast.types import Storage

    payload = make_payload(a.payload)
    n = a.messages
    out: dict[str, Any] = {"module": memphis_fast.__file__, "path": a.path, "messages": n, "ok": False}
    m = Memphis()
    await m.connect(host=a.host, port=a.port, username=a.user, password=a.password, timeout_ms=60000)
    try:
        await m.station(a.station, storage_type=Storage.MEMORY)
        if a.path in ("produce-sync", "produce-nonblocking", "produce-batch"):
            producer = await m.producer(station_name=a.station, producer_name=PRODUCER_NAME)
            produce = producer.produce
            if a.path == "produce-sync":
                for _ in range(n):
                    await produce(payload)
                out["stored"] = n
            elif a.path == "produce-nonblocking":
                for _ in range(n):
                    await produce(payload, nonblocking=True)
                await producer.flush()  # raises if any message failed
                out["stored"] = n
            else:
                stored = failed = 0
                batch = [payload] * a.batch
                left = n
                while left > 0:
                    chunk = batch if left >= len(batch) else batch[:left]
                    for r in await producer.produce_batch(chunk):
                        if r.stored:
                            stored += 1
                        else:
                            failed += 1
                    left -= len(chunk)
                out["stored"], out["failed"] = stored, failed
            out["ok"] = out["stored"] == n and not out.get("failed")
        else:
            consumer = await m.consumer(
                station_name=a.station,
                consumer_name="paths-consumer",
                consumer_group=CONSUMER_GROUP,
                batch_size=a.batch,
                pull_interval_ms=1,
            )
            received = nbytes = 0
            errors: list[str] = []
            if a.path == "consume-ack-consume":
                done = asyncio.Event()

                async def handler(msgs: list[Any], error: Any, context: Any) -> None:
                    nonlocal received, nbytes
                    if error is not None:
                        errors.append(repr(error))
                    for msg in msgs:
                        nbytes += len(msg.get_data())
                        await msg.ack()
                    received += len(msgs)
                    if received >= n:
                        done.set()

                consumer.consume(handler)
                await asyncio.wait_for(done.wait(), a.wait)
                await consumer.stop_consume()
            else:
                fetch = consumer.fetch
                deadline = time.monotonic() + a.wait
                while received < n and time.monotonic() < deadline:
                    msgs = await fetch(batch_size=a.batch)
                    for msg in msgs:
                        nbytes += len(msg.get_data())
                        await msg.ack()
                    received += len(msgs)
            out.update(received=received, bytes=nbytes, errors=errors[:5])
            out["ok"] = received == n and nbytes == n * a.payload
    finally:
        await m.close()
    return out


def client_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="paths_instructions.py client")
    p.add_argument("--path", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", default="root")
    p.add_argument("--password", required=True)
    p.add_argument("--station", required=True)
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--payload", type=int, default=PAYLOAD_SIZE)
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--wait", type=float, default=240.0, help="consume: give up after this many seconds")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    res = asyncio.run(_client(a))
    Path(a.out).write_text(json.dumps(res))
    return 0 if res.get("ok") else 3


# == the harness ===================================================================================
class HarnessError(RuntimeError):
    pass


def _child_setup() -> None:  # pragma: no cover - between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the harness
    except Exception:
        pass


def _run_child(cmd: list[str], env: dict[str, str], log: Path, timeout: float) -> tuple[int, float]:
    """Run ``cmd`` in its own process group; kill the group on timeout or Ctrl-C."""
    t0 = time.monotonic()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_child_setup if sys.platform.startswith("linux") else None,
        )
        try:
            code = proc.wait(timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    return code, time.monotonic() - t0


def callgrind_total(path: Path) -> int:
    """The ``totals:`` (or ``summary:``) event count of a callgrind out file."""
    summary = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
            if line.startswith("summary:"):
                summary = int(line.split()[1])
    if summary is None:
        raise HarnessError(f"no totals/summary line in {path}")
    return summary


def _tool_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else None


def _git(tree: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


class Harness:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.pycache = workdir / "pycache"
        self.pycache.mkdir()
        self.broker: Any = None
        self.control: Any = None
        self.loop = asyncio.Runner()
        self.module_file: str | None = None
        self.broker_module: str | None = None
        base = dict(os.environ)
        base.pop("PYTHONDONTWRITEBYTECODE", None)
        pp = [args.pythonpath] if args.pythonpath else []
        if base.get("PYTHONPATH"):
            pp.append(base["PYTHONPATH"])
        if pp:
            base["PYTHONPATH"] = os.pathsep.join(pp)
        base["PYTHONHASHSEED"] = "0"
        base["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        self.client_env = base

    # -- broker ---------------------------------------------------------------------------------
    def start(self) -> None:
        a = self.args
        broker_env = dict(os.environ)
        broker_env["PYTHONDONTWRITEBYTECODE"] = "1"  # never write .pyc into a measured tree
        tree = a.broker_pythonpath
        if tree:
            sys.path.insert(0, tree)
            broker_env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, broker_env.get("PYTHONPATH")]))
        sys.dont_write_bytecode = True
        try:
            from memphis_fast.bench.control import Control
            from memphis_fast.bench.runner_raw import preload
            from memphis_fast.broker import LocalBroker

            self._preload = preload
            self.broker = LocalBroker(memory=True, log_level="warning", env=broker_env)
            self.broker.start()
        except Exception as exc:
            raise HarnessError(
                f"could not start the broker from {tree or 'the harness environment'} "
                f"(--broker-pythonpath picks another tree): {type(exc).__name__}: {exc}"
            ) from exc
        self.broker_module = sys.modules["memphis_fast"].__file__
        b = self.broker
        if b.host != "127.0.0.1":
            raise HarnessError(f"the broker listens on {b.host}, not 127.0.0.1")
        self.control = Control(b.nats_kwargs(), b.username)
        self.loop.run(self.control.connect())

    def stop(self) -> None:
        if self.control is not None:
            with contextlib.suppress(Exception):
                self.loop.run(self.control.close())
        with contextlib.suppress(Exception):
            self.loop.close()
        if self.broker is not None:
            self.broker.cleanup()
            self.broker = None

    # -- one run ------------------------------------------------------------------------------------
    def run_once(self, spec: PathSpec, n: int, *, instrument: bool) -> dict[str, Any]:
        a = self.args
        b = self.broker
        c = self.control
        station = f"paths-{spec.slug}-{n}-{secrets.token_hex(4)}"
        tag = f"{spec.slug}-{n}-{secrets.token_hex(3)}"
        cg_out = self.workdir / f"callgrind.{tag}.out"
        res_file = self.workdir / f"result.{tag}.json"
        log = self.workdir / f"log.{tag}.txt"
        self.loop.run(c.create_station(station, 1))
        try:
            if spec.kind == "consume":
                stored = self._preload(
                    b.host,
                    b.port,
                    station,
                    1,
                    n,
                    make_payload(PAYLOAD_SIZE),
                    user=b.nats_user,
                    password=b.password,
                )
                in_stream = self.loop.run(c.stored(station, 1))
                if stored != n or in_stream != n:
                    raise HarnessError(f"{spec.name}: pre-fill stored {stored}/{in_stream} of {n} messages")
            cmd = [
                a.python, os.path.abspath(__file__), "client", "--path", spec.slug, "--host", b.host,
                "--port", str(b.port), "--user", b.username, "--password", b.password, "--station", station,
                "--messages", str(n), "--payload", str(PAYLOAD_SIZE), "--batch", str(BATCH), "--out", str(res_file),
            ]  # fmt: skip
            if instrument:
                cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg_out}", *cmd]
            code, secs = _run_child(cmd, self.client_env, log, a.timeout)
            tail = log.read_text(errors="replace")[-3000:]
            if code != 0 or not res_file.exists():
                raise HarnessError(f"{spec.name} (N={n}): the client exited with {code}:\n{tail}")
            res = json.loads(res_file.read_text())
            self._check_module(res["module"])
            if not res.get("ok"):
                raise HarnessError(f"{spec.name} (N={n}): the client reported a failure: {res}")
            self._verify(spec, station, n)
            out: dict[str, Any] = {"n": n, "seconds": round(secs, 2)}
            if instrument:
                out["ir"] = callgrind_total(cg_out)
                if not a.keep:
                    cg_out.unlink()
            return out
        finally:
            with contextlib.suppress(Exception):
                self.loop.run(c.delete_station(station))

    def _check_module(self, module: str) -> None:
        self.module_file = module
        if self.args.pythonpath:
            root = os.path.realpath(self.args.pythonpath)
            if not os.path.realpath(module).startswith(root + os.sep):
                raise HarnessError(f"the client imported memphis_fast from {module}, not from {root}")

    def _verify(self, spec: PathSpec, station: str, n: int) -> None:
        c = self.control
        if spec.kind == "produce":
            deadline = time.monotonic() + 5
            while True:
                stored = int(self.loop.run(c.stored(station, 1)))
                if stored >= n or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if stored != n:
                raise HarnessError(f"{spec.name}: {stored} messages stored in the stream, expected {n}")
            return
        st = self.loop.run(c.wait_acked(station, 1, CONSUMER_GROUP, n))
        if st["ack_floor"] != n or st["ack_pending"] or st["pending"] or st["redelivered"]:
            raise HarnessError(
                f"{spec.name}: consumer group state {st}, expected {n} acked in order, none pending or redelivered"
            )

    # -- the measurement ----------------------------------------------------------------------------
    def measure(self, specs: list[PathSpec]) -> dict[str, Any]:
        a = self.args
        sizes = {s.name: (s.quick_n, s.quick_n0) if a.quick else (s.n, s.n0) for s in specs}
        say(f"preflight (not instrumented, warms the byte-code cache) for {len(specs)} path(s)")
        for s in specs:
            r = self.run_once(s, 200, instrument=False)
            say(f"  {s.name}: ok ({r['seconds']} s)")
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in specs}
        for k in range(a.runs):
            for s in specs:
                n, n0 = sizes[s.name]
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    # The measured tree may be edited while we measure (byte code recompiled in
                    # one run, not the other, or different code in N and N0): re-warm the cache
                    # and accept the pair only if the package did not change meanwhile.
                    fp0 = self.fingerprint()
                    self.run_once(s, 200, instrument=False)
                    big = self.run_once(s, n, instrument=True)
                    small = self.run_once(s, n0, instrument=True)
                    fp1 = self.fingerprint()
                    if fp0 == fp1:
                        break
                    say(
                        f"  run {k + 1} {s.name}: the measured package changed during the run (attempt {attempt})"
                    )
                per = (big["ir"] - small["ir"]) / (n - n0)
                runs[s.name].append(
                    {"ir_n": big["ir"], "ir_n0": small["ir"], "seconds_n": big["seconds"],
                     "seconds_n0": small["seconds"], "per_msg": round(per, 1), "package": fp1,
                     "package_changed_during_run": fp0 != fp1}
                )  # fmt: skip
                say(
                    f"  run {k + 1}/{a.runs} {s.name}: {per:,.0f} instr/msg "
                    f"(Ir {big['ir']:,} @ N={n} in {big['seconds']} s, {small['ir']:,} @ N0={n0} in {small['seconds']} s)"
                )
                slow = max(big["seconds"], small["seconds"])
                if slow > 60:
                    say(f"  warning: a valgrind run of {s.name} took {slow:.0f} s (> 60 s)")
        out: dict[str, Any] = {}
        for s in specs:
            n, n0 = sizes[s.name]
            rs = runs[s.name]
            valid = [r for r in rs if not r["package_changed_during_run"]]
            if not valid:
                raise HarnessError(
                    f"{s.name}: the measured package changed during every attempt of every run; "
                    "measure a tree nobody is editing"
                )
            # Runs of the same code only: the valid runs of the latest package measured.
            used = [r for r in valid if r["package"] == valid[-1]["package"]]
            same = len(used) == len(rs)
            headline = (min(r["ir_n"] for r in used) - min(r["ir_n0"] for r in used)) / (n - n0)
            if not same:
                say(
                    f"  warning: {s.name}: the measured package changed during or between runs; the figure "
                    f"comes from the {len(used)} of {len(rs)} run(s) of the latest package"
                )
            per_runs = [r["per_msg"] for r in used]
            lo, hi = min(per_runs), max(per_runs)
            out[s.name] = {
                "instructions_per_message": round(headline, 1),
                "n": n,
                "n0": n0,
                "runs": rs,
                "per_msg_min": lo,
                "per_msg_max": hi,
                "spread_pct": round(100 * (hi - lo) / lo, 2) if lo > 0 else None,
                "same_package_in_all_runs": same,
                "runs_used": len(used),
            }
        return out

    def fingerprint(self) -> str:
        """A hash of the measured package's files (path, mtime, size), ``__pycache__`` excluded."""
        if not self.module_file:
            return ""
        root = Path(self.module_file).resolve().parent
        h = hashlib.sha1()
        for f in sorted(root.rglob("*")):
            if "__pycache__" in f.parts or not f.is_file():
                continue
            with contextlib.suppress(OSError):
                st = f.stat()
                h.update(f"{f.relative_to(root)}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
        return h.hexdigest()[:16]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def metadata(args: argparse.Namespace, harness: Harness, argv: list[str]) -> dict[str, Any]:
    tree = Path(args.pythonpath).resolve() if args.pythonpath else Path(__file__).resolve().parent.parent
    nats_server = shutil.which("nats-server") or str(Path(sys.executable).with_name("nats-server"))
    return {
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv[:1], *argv]),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tree": str(tree),
        "commit": _git(tree, "rev-parse", "HEAD"),
        "dirty": bool(_git(tree, "status", "--porcelain", "--untracked-files=no")),
        "memphis_fast_module": harness.module_file,
        "broker_module": harness.broker_module,
        "python": args.python,
        "python_version": _tool_version([args.python, "-c", "import sys; print(sys.version.split()[0])"]),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "valgrind": _tool_version(["valgrind", "--version"]),
        "nats_server": _tool_version([nats_server, "--version"]),
        "payload_bytes": PAYLOAD_SIZE,
        "batch": BATCH,
        "storage": "memory",
        "runs": args.runs,
        "quick": args.quick,
        "figure": "(min Ir(N) - min Ir(N0)) / (N - N0), Ir = callgrind totals of the client process",
    }


def render(results: dict[str, Any]) -> str:
    lines = [
        f"{'path':<24}{'N':>7}{'N0':>7}{'instr/msg':>12}{'min run':>11}{'max run':>11}{'spread':>9}",
        "-" * 81,
    ]
    for name, r in results.items():
        lines.append(
            f"{name:<24}{r['n']:>7}{r['n0']:>7}{r['instructions_per_message']:>12,.0f}"
            f"{r['per_msg_min']:>11,.0f}{r['per_msg_max']:>11,.0f}{r['spread_pct']:>8.1f}%"
        )
    return "\n".join(lines)


def compare(base: dict[str, Any], now: dict[str, Any]) -> str:
    """Per path: the baseline's figure, this one, the change; ``slower?`` above the noise
    (1 %, or twice the larger run-to-run spread of the two measurements)."""
    lines = [f"{'path':<24}{'baseline':>12}{'now':>12}{'change':>10}", "-" * 66]
    for name, r in now.items():
        b = base.get(name)
        if b is None:
            lines.append(f"{name:<24}{'-':>12}{r['instructions_per_message']:>12,.0f}")
            continue
        x, y = b["instructions_per_message"], r["instructions_per_message"]
        change = 100 * (y - x) / x
        noise = max(1.0, 2 * max(b.get("spread_pct") or 0, r.get("spread_pct") or 0))
        mark = "  slower?" if change > noise else ("  faster" if change < -noise else "")
        lines.append(f"{name:<24}{x:>12,.0f}{y:>12,.0f}{change:>+9.1f}%{mark}")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Instructions per message (callgrind) of memphis-fast's public API paths.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="paths: " + ", ".join(f"{s.name!r} (or {s.slug})" for s in PATHS),
    )
    p.add_argument(
        "--paths", default=",".join(s.slug for s in PATHS), help="comma-separated list (default: all)"
    )
    p.add_argument("--runs", type=int, default=2, help="runs per path; the minimum is reported (default 2)")
    p.add_argument("--json", help="write the results (and machine info) to this file")
    p.add_argument("--python", default=sys.executable, help="the measured interpreter (default: this one)")
    p.add_argument("--pythonpath", help="prepended to the measured process's PYTHONPATH (another checkout)")
    p.add_argument(
        "--broker-pythonpath",
        metavar="DIR",
        help="take the broker and the set-up helpers (memphis_fast.broker, memphis_fast.bench) from this "
        "tree (default: --pythonpath, else the harness's own memphis_fast)",
    )
    p.add_argument("--quick", action="store_true", help="small N, one run (a smoke test, noisier)")
    p.add_argument("--timeout", type=float, default=300.0, help="kill a client run after this many seconds")
    p.add_argument("--compare", metavar="BASE.json", help="also print the change against a saved result file")
    p.add_argument(
        "--results", metavar="NOW.json", help="with --compare: compare this saved file instead of measuring"
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (callgrind out files, logs)")
    a = p.parse_args(argv)
    specs = []
    for name in filter(None, (x.strip() for x in a.paths.split(","))):
        spec = BY_NAME.get(_norm(name))
        if spec is None:
            p.error(f"unknown path {name!r}; known: {', '.join(s.slug for s in PATHS)}")
        if spec not in specs:
            specs.append(spec)
    a.specs = specs
    if a.quick and "--runs" not in " ".join(argv):
        a.runs = 1
    if a.runs < 1:
        p.error("--runs must be >= 1")
    if a.pythonpath:
        a.pythonpath = os.path.abspath(a.pythonpath)
    a.broker_pythonpath = os.path.abspath(a.broker_pythonpath) if a.broker_pythonpath else a.pythonpath
    if a.results and not a.compare:
        p.error("--results needs --compare")
    if shutil.which("valgrind") is None and not a.results:
        p.error("valgrind is not installed")
    return a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        return client_main(argv[1:])
    args = parse_args(argv)
    if args.results:
        now = json.loads(Path(args.results).read_text())["paths"]
        print(compare(json.loads(Path(args.compare).read_text())["paths"], now))
        return 0

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="paths-instructions-"))
    harness = Harness(args, workdir)
    try:
        harness.start()
        say(f"broker on {harness.broker.host}:{harness.broker.port}; work directory {workdir}")
        results = harness.measure(args.specs)
    except HarnessError as exc:
        say(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        harness.stop()
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    meta = metadata(args, harness, argv)
    table = render(results)
    print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({"meta": meta, "paths": results, "table": table}, indent=2) + "\n"
        )
        say(f"wrote {args.json}")
    if args.compare:
        print()
        print(compare(json.loads(Path(args.compare).read_text())["paths"], results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
