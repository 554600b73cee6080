"""Book-keeping for the fault suite: a ledger of what every produced message became, the
stream's real content read back with nats-py, connection events with timestamps, the
process's RSS, and the JSON figures each test writes under ``tests/faults/results/``."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from memphis_fast import _subjects as subjects
from memphis_fast.broker import LocalBroker
from memphis_fast.exceptions import MemphisError, MemphisProduceError

#: where each test writes its figures (``MEMPHIS_FAST_FAULTS_RESULTS`` overrides it, e.g. for CI)
RESULTS_DIR = Path(os.environ.get("MEMPHIS_FAST_FAULTS_RESULTS") or Path(__file__).parent / "results")
FULL = os.environ.get("MEMPHIS_FAST_FULL") == "1"

#: Client options of the fault suite: reconnect fast and forever, connect attempts bounded.
FAST_RECONNECT: dict[str, Any] = {"reconnect_interval_ms": 100, "timeout_ms": 1000, "max_reconnect": -1}

_PAYLOAD = re.compile(rb"^(?P<run>[0-9a-f]+):(?P<i>\d+):")


def rss_bytes() -> int:
    """This process's resident set size (Linux ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0, every: float = 0.02, what: str = ""
) -> float:
    """Wait until ``check()`` is true; returns the seconds it took. Fails after ``timeout``."""
    t0 = time.monotonic()
    while True:
        res = check()
        if not isinstance(res, bool):
            res = await res
        if res:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not true within {timeout} s: {what or check}")
        await asyncio.sleep(every)


class Events:
    """A ``connection_event_callback`` that keeps ``(monotonic time, name, detail)``."""

    def __init__(self) -> None:
        self.items: list[tuple[float, str, Any]] = []

    def __call__(self, name: str, detail: Any) -> None:
        self.items.append((time.monotonic(), name, detail))

    def count(self, name: str) -> int:
        return sum(1 for _, n, _ in self.items if n == name)

    def first_after(self, name: str, t: float) -> float | None:
        for ts, n, _ in self.items:
            if n == name and ts >= t:
                return ts
        return None

    def details(self, name: str) -> list[Any]:
        return [d for _, n, d in self.items if n == name]

    async def wait(self, name: str, count: int = 1, timeout: float = 20.0) -> float:
        await eventually(lambda: self.count(name) >= count, timeout, what=f"{count} {name!r} event(s)")
        return time.monotonic()


def payload(run: str, i: int, size: int = 32) -> bytes:
    head = f"{run}:{i}:".encode()
    return head + b"." * max(0, size - len(head))


@dataclass
class Ledger:
    """What became of each produced message, by the test's own index ``i``.

    ``acked``: the client said stored. ``reported``: the client reported it failed (kind and
    reason). ``stored``: how many copies the stream holds (read back after the run)."""

    run: str
    with_msg_id: bool = False
    sent: list[int] = field(default_factory=list)
    acked: dict[int, float] = field(default_factory=dict)
    reported: dict[int, tuple[str, str]] = field(default_factory=dict)
    raised: dict[int, str] = field(default_factory=dict)
    stored: collections.Counter[int] = field(default_factory=collections.Counter)
    foreign: int = 0
    double_outcomes: list[int] = field(default_factory=list)

    def msg_id(self, i: int) -> str | None:
        return f"{self.run}-{i}" if self.with_msg_id else None

    def index_of_msg_id(self, msg_id: object) -> int | None:
        if isinstance(msg_id, str) and msg_id.startswith(self.run + "-"):
            return int(msg_id[len(self.run) + 1 :])
        return None

    def ack(self, i: int) -> None:
        if i in self.acked or i in self.reported:
            self.double_outcomes.append(i)
        self.acked[i] = time.monotonic()

    def report(self, i: int, kind: object, reason: object) -> None:
        if i in self.acked or i in self.reported:
            self.double_outcomes.append(i)
        self.reported[i] = (str(kind), str(reason))

    def report_error(self, i: int, err: MemphisError) -> None:
        """A produce call raised: a MemphisProduceError carries the message's outcome; any
        other MemphisError means it was refused before sending."""
        if isinstance(err, MemphisProduceError) and getattr(err, "failures", None):
            f = err.failures[0]
            self.report(i, f.kind, f.reason)
        else:
            self.raised[i] = f"{type(err).__name__}: {err}"
            self.report(i, "raised", type(err).__name__)

    def finish_nonblocking(self) -> None:
        """Nonblocking produces report failures only: once flushed, every message not
        reported was acknowledged."""
        now = time.monotonic()
        for i in self.sent:
            if i not in self.reported and i not in self.acked:
                self.acked[i] = now

    def add_stored(self, payloads: Iterable[bytes]) -> None:
        for p in payloads:
            m = _PAYLOAD.match(p)
            if m is None or m.group("run").decode() != self.run:
                self.foreign += 1
                continue
            self.stored[int(m.group("i"))] += 1

    # -- the counts ------------------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        sent = set(self.sent)
        stored = {i for i, n in self.stored.items() if n > 0}
        kinds = collections.Counter(k for k, _ in self.reported.values())
        reasons = collections.Counter(f"{k}/{r}" for k, r in self.reported.values())
        # A message reported "not sent" or "not stored" must not be in the stream.
        contradicted = sorted(
            i
            for i, (k, _) in self.reported.items()
            if k in ("not_sent", "not_stored", "raised") and i in stored
        )
        return {
            "sent": len(sent),
            "acknowledged": len(self.acked),
            "reported": len(self.reported),
            "reported_by_kind": dict(kinds),
            "reported_by_reason": dict(reasons),
            "stored": len(stored),
            "stored_copies": sum(self.stored.values()),
            "lost": len([i for i in self.acked if i not in stored]),
            "unreported": len(sent - stored - set(self.reported)),
            "duplicates": sum(n - 1 for n in self.stored.values() if n > 1),
            "reported_unknown_but_stored": len(
                [i for i, (k, _) in self.reported.items() if k == "unknown" and i in stored]
            ),
            "reported_failed_but_stored": len(contradicted),
            "double_outcomes": len(self.double_outcomes),
            "foreign": self.foreign,
        }

    def check(self, *, duplicates_allowed: bool | None = None) -> dict[str, Any]:
        """Assert the invariants and return the counts."""
        c = self.counts()
        assert c["sent"] > 0, "nothing was produced"
        assert c["double_outcomes"] == 0, f"messages with two outcomes: {self.double_outcomes[:10]}"
        assert c["acknowledged"] + c["reported"] == c["sent"], c
        assert c["lost"] == 0, f"acknowledged but not stored: {c}"
        assert c["unreported"] == 0, f"neither stored nor reported: {c}"
        assert c["foreign"] == 0, c
        assert c["reported_failed_but_stored"] == 0, f"reported as not sent/not stored, yet stored: {c}"
        allowed = (not self.with_msg_id) if duplicates_allowed is None else duplicates_allowed
        if not allowed:
            assert c["duplicates"] == 0, c
        return c


async def read_stream(broker: LocalBroker, stream: str, timeout: float = 30.0) -> list[bytes]:
    """Every message the stream holds, read with nats-py through an ephemeral consumer."""
    nc = await nats.connect(**broker.nats_kwargs(), allow_reconnect=False)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        want = info.state.messages
        out: list[bytes] = []
        if want == 0:
            return out
        sub = await js.pull_subscribe(
            subjects.final_subject(stream),
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
        )
        deadline = time.monotonic() + timeout
        try:
            while len(out) < want:
                if time.monotonic() > deadline:
                    raise AssertionError(f"read {len(out)} of {want} messages of {stream}")
                try:
                    msgs = await sub.fetch(min(1000, want - len(out)), timeout=2)
                except nats.errors.TimeoutError:
                    continue
                out.extend(m.data for m in msgs)
        finally:
            await sub.unsubscribe()
        return out
    finally:
        await nc.close()


async def read_station(broker: LocalBroker, station: str, partitions: list[int] | None) -> list[bytes]:
    out: list[bytes] = []
    for stream in subjects.station_streams(station, partitions):
        out.extend(await read_stream(broker, stream))
    return out


def record(name: str, figures: dict[str, Any]) -> Path:
    """Write the figures of one test as ``tests/faults/results/<name>.json``."""
    RESULTS_DIR.mkdir(exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    path = RESULTS_DIR / f"{safe}.json"
    doc = {
        "test": name,
        "full": FULL,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **figures,
    }
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


class AckMonitor:
    """Polls a producer's group counters (``acked``) so a test can tell when acknowledgements
    resume after a fault, whatever the produce mode."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    def stats(self) -> dict[str, int]:
        p = self._producer
        return dict(p._conn.core.group_stats(p._group))

    def start(self) -> AckMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        last = -1
        while True:
            acked = self.stats()["acked"]
            if acked != last:
                self.samples.append((time.monotonic(), acked))
                last = acked
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def first_ack_after(self, t: float) -> float | None:
        before = 0
        for ts, n in self.samples:
            if ts < t:
                before = n
                continue
            if n > before:
                return ts
        return None


class NonblockingStream:
    """A nonblocking producer at a steady rate, keeping a :class:`Ledger`; failures come
    through the producer's ``failure_callback`` (:meth:`on_failure`)."""

    def __init__(self, ledger: Ledger, *, rate: int = 2000, ack_wait: int = 10) -> None:
        self.ledger = ledger
        self.rate = rate
        self.ack_wait = ack_wait
        self.producer: Any = None
        self.monitor: AckMonitor | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def on_failure(self, f: Any) -> None:
        led = self.ledger
        i = led.index_of_msg_id(f.msg_id) if led.with_msg_id else f.index
        assert i is not None, f
        led.report(i, f.kind, f.reason)

    async def start(self, conn: Any, station: str) -> NonblockingStream:
        await conn.station(station)
        self.station = station
        self.producer = await conn.producer(station, "p", failure_callback=self.on_failure)
        self.monitor = AckMonitor(self.producer).start()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def acked(self) -> int:
        assert self.monitor is not None
        return self.monitor.stats()["acked"]

    async def wait_acked(self, n: int, timeout: float = 20.0) -> None:
        await eventually(
            lambda: self.acked() >= n or (self._task is not None and self._task.done()),
            timeout,
            what=f"{n} acks",
        )
        if self._task is not None and self._task.done():
            self._task.result()

    async def _run(self) -> None:
        led = self.ledger
        t0 = time.monotonic()
        i = len(led.sent)
        while not self._stop.is_set():
            led.sent.append(i)
            try:
                await self.producer.produce(
                    payload(led.run, i), ack_wait_sec=self.ack_wait, nonblocking=True, msg_id=led.msg_id(i)
                )
            except MemphisError as err:
                led.report_error(i, err)
            i += 1
            ahead = i / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                await asyncio.sleep(ahead)

    async def finish(self, broker: LocalBroker) -> dict[str, Any]:
        """Stop producing, flush, read the station back and check the ledger."""
        self._stop.set()
        assert self._task is not None and self.monitor is not None
        await asyncio.wait_for(self._task, self.ack_wait + 30)
        await self.producer.flush(timeout=self.ack_wait + 30)
        await self.monitor.stop()
        self.ledger.finish_nonblocking()
        self.ledger.add_stored(await read_station(broker, self.station, self.producer._partitions))
        return self.ledger.check()
