"""Workloads and accounting for the cluster fault tests (imported as a plain module).

A run produces numbered messages (``<variant>:<n>``) into one ``replicas=3`` station with the
six producer variants at once (sync, nonblocking, batch; each with and without msg_id), injects
one fault, and then reads the stream back with nats-py to count, per variant:

- ``sent``: messages handed to the client;
- ``acked``: the client said stored (an awaited produce returned, a batch result was stored, or,
  for nonblocking without a delivery callback in this build, no failure was reported once
  ``flush()`` returned: the client's contract is that every message is acknowledged or reported);
- ``failed``: the client reported it not stored / unknown / not sent (by kind);
- ``stored``: distinct messages found in the stream; ``duplicates``: extra copies;
- ``lost``: acked but not stored (must be 0); ``unreported``: neither stored nor reported (must
  be 0); ``failed_but_stored``: reported failed yet stored (allowed only for kind "unknown");
- ``recovery_s``: from the fault to the acknowledgement of the first message produced after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

import memphis_fast
from memphis_fast import _subjects as subjects
from memphis_fast import producer as producer_module
from memphis_fast.broker import LocalBroker

FULL = os.environ.get("MEMPHIS_FAST_FULL") == "1"
RESULTS_DIR = Path(__file__).parent / "results"
MODES = ("sync", "nonblocking", "batch")
BATCH = 20


@dataclass
class Tally:
    variant: str
    mode: str
    with_id: bool
    sent: int = 0
    acked: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)
    failure_texts: Counter[str] = field(default_factory=Counter)
    sent_at: dict[int, float] = field(default_factory=dict)
    acked_at: dict[int, float] = field(default_factory=dict)
    acked_inferred: bool = False
    errors: list[str] = field(default_factory=list)

    def ack(self, n: int) -> None:
        self.acked.add(n)
        self.acked_at[n] = time.monotonic()

    def fail(self, n: int, kind: str, text: str) -> None:
        self.failed[n] = kind
        self.failure_texts[re.sub(r"message \d+( \(msg_id [^)]*\))?", "message N", text)[:200]] += 1


def kind_of(r: Any) -> str:
    kind = r.kind
    return str(getattr(kind, "value", kind))


def variants() -> list[Tally]:
    return [Tally(f"{m}{'-id' if i else ''}", m, i) for m in MODES for i in (False, True)]


async def memphis_connect(broker: LocalBroker, **kw: Any) -> memphis_fast.Memphis:
    m = memphis_fast.Memphis()
    await m.connect(**{**broker.connect_kwargs(), **kw})
    return m


async def produce_loop(
    m: memphis_fast.Memphis, station: str, t: Tally, stop: asyncio.Event, rate: float, run: str
) -> None:
    """Produce ``rate`` messages/s (batches of BATCH for the batch mode) until ``stop``."""
    tally_failure = t.fail

    def on_failure(r: Any) -> None:
        tally_failure(int(r.index), kind_of(r), str(r.error or r.reason))

    supports_delivery = bool(getattr(producer_module, "_REPORT_STORED", False))

    def on_delivery(r: Any) -> None:
        if r.stored:
            t.ack(int(r.index))
        else:
            on_failure(r)

    kwargs: dict[str, Any] = {}
    if t.mode == "nonblocking":
        kwargs = {"delivery_callback": on_delivery} if supports_delivery else {"failure_callback": on_failure}
    p = await m.producer(station_name=station, producer_name=f"p-{t.variant}", **kwargs)
    interval = (BATCH if t.mode == "batch" else 1) / rate
    n = 0
    next_at = time.monotonic()
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now < next_at:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), next_at - now)
                continue
            next_at += interval
            if t.mode == "batch":
                nums = list(range(n, n + BATCH))
                n += BATCH
                msgs = [f"{t.variant}:{i}".encode() for i in nums]
                ids = [f"{run}-{t.variant}-{i}" for i in nums] if t.with_id else None
                for i in nums:
                    t.sent_at[i] = time.monotonic()
                t.sent += len(nums)
                results = await p.produce_batch(msgs, msg_ids=ids)
                for i, r in zip(nums, results, strict=False):
                    if r.stored:
                        t.ack(i)
                    else:
                        t.fail(i, kind_of(r), str(r.error or r.reason))
                continue
            i = n
            n += 1
            payload = f"{t.variant}:{i}".encode()
            mid = f"{run}-{t.variant}-{i}" if t.with_id else None
            t.sent_at[i] = time.monotonic()
            t.sent += 1
            if t.mode == "sync":
                try:
                    await p.produce(payload, msg_id=mid)
                    t.ack(i)
                except memphis_fast.MemphisProduceError as exc:
                    failures = getattr(exc, "failures", None) or []
                    kind = kind_of(failures[0]) if failures else "error"
                    t.fail(i, kind, str(exc))
            else:
                try:
                    await p.produce(payload, msg_id=mid, nonblocking=True)
                except memphis_fast.MemphisProduceError as exc:
                    # An earlier nonblocking failure raised here (also given to the callback);
                    # this message itself was not queued.
                    t.sent -= 1
                    n -= 1
                    del t.sent_at[i]
                    t.errors.append(str(exc)[:200])
        if t.mode == "nonblocking":
            with contextlib.suppress(memphis_fast.MemphisError):
                await p.flush(timeout=60)
            if not supports_delivery:
                t.acked_inferred = True
                for i in range(n):
                    if i not in t.failed:
                        t.acked.add(i)
    finally:
        with contextlib.suppress(Exception):
            await p.destroy(timeout_retries=0)


class Stored(Counter[str]):
    """The stream's messages counted by payload, with when each was first stored (wall clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.stored_at: dict[str, float] = {}


async def read_stream(broker: LocalBroker, station: str) -> Stored:
    """Every message stored in the station's (one) stream, counted by payload."""
    stream = subjects.stream_name(station, 1)
    nc = await nats.connect(**broker.nats_kwargs(), max_reconnect_attempts=10, error_cb=quiet)
    try:
        js = nc.jetstream(timeout=10)
        settle = time.monotonic() + 30
        while True:  # the stream may be between leaders right after the fault
            try:
                info = await js.stream_info(stream)
                break
            except (nats.js.errors.ServiceUnavailableError, nats.errors.TimeoutError):
                if time.monotonic() > settle:
                    raise
                await asyncio.sleep(0.2)
        total = info.state.messages
        sub = await js.pull_subscribe(
            info.config.subjects[0] if info.config.subjects else ">",
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
        )
        seen = Stored()
        got = 0
        deadline = time.monotonic() + 60
        while got < total and time.monotonic() < deadline:
            # The verifier's own pull may be answered 503 while the cluster settles after the
            # fault (a consumer leader being elected): try again until the deadline.
            with contextlib.suppress(nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
                for msg in await sub.fetch(1000, timeout=2):
                    key = msg.data.decode()
                    seen[key] += 1
                    if key not in seen.stored_at:
                        seen.stored_at[key] = msg.metadata.timestamp.timestamp()
                    got += 1
        await sub.unsubscribe()
        assert got >= total, f"read {got} of {total} messages of {stream}"
        return seen
    finally:
        await nc.close()


def account(t: Tally, stored: Stored, fault_at: float | None, fault_wall: float | None = None) -> dict[str, Any]:
    copies = {int(k.split(":", 1)[1]): c for k, c in stored.items() if k.startswith(f"{t.variant}:")}
    sent = set(t.sent_at)
    stored_ids = set(copies)
    failed = set(t.failed)
    recovery = None
    stored_recovery = None
    stored_after = 0
    if fault_at is not None:
        after = [i for i in sorted(t.sent_at) if t.sent_at[i] >= fault_at]
        stored_after = sum(1 for i in after if i in stored_ids)
        acked_after = [i for i in after if i in t.acked_at]
        if acked_after:
            recovery = round(t.acked_at[acked_after[0]] - fault_at, 3)
        first = next((i for i in after if i in stored_ids), None)
        if first is not None and fault_wall is not None:
            stored_recovery = round(stored.stored_at[f"{t.variant}:{first}"] - fault_wall, 3)
    # The outage as the stream saw it: the longest pause between two of this variant's stored
    # messages that ends after the fault (normal pauses: 1/rate, a batch interval).
    times = sorted(stored.stored_at[f"{t.variant}:{i}"] for i in stored_ids)
    gaps = [b - a for a, b in zip(times[:-1], times[1:], strict=True) if fault_wall is None or b >= fault_wall]
    max_gap = round(max(gaps), 3) if gaps else None
    return {
        "variant": t.variant,
        "mode": t.mode,
        "msg_id": t.with_id,
        "sent": len(sent),
        "acked": len(t.acked),
        "acked_inferred": t.acked_inferred,
        "failed": len(failed),
        "failed_by_kind": dict(Counter(t.failed.values())),
        "failure_texts": dict(t.failure_texts.most_common(3)),
        "stored": len(stored_ids),
        "duplicates": sum(c - 1 for c in copies.values()),
        "lost": len(t.acked - stored_ids),
        "unreported": len(sent - stored_ids - failed),
        "failed_but_stored": len(failed & stored_ids),
        "failed_but_stored_not_unknown": len(
            {i for i in failed & stored_ids if t.failed[i] != "unknown"}
        ),
        "stray": len(stored_ids - sent),
        # From the fault to the acknowledgement of the first message produced after it (None
        # when this build reports no per-message success for nonblocking produces), and to the
        # time the stream stored it (from the stored message's timestamp).
        "recovery_s": recovery,
        "stored_recovery_s": stored_recovery,
        "stored_after_fault": stored_after,
        "max_store_gap_s": max_gap,
        "errors": t.errors[:3],
    }


async def quiet(exc: Exception) -> None:
    """nats-py's error callback: a node going away is what these tests do."""


# -- cluster inspection ------------------------------------------------------------------------
def http_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own loopback monitor
        data: dict[str, Any] = json.loads(resp.read())
        return data


def node_of_connection(broker: LocalBroker, name_part: str) -> int:
    """The index of the node holding a client connection whose name contains ``name_part``."""
    for i, node in enumerate(broker.nodes()):
        if not node.get("monitor") or not node.get("running"):
            continue
        with contextlib.suppress(OSError, ValueError):
            conns = http_json(f"{node['monitor']}/connz?limit=10000").get("connections") or []
            if any(name_part in (c.get("name") or "") for c in conns):
                return i
    raise AssertionError(f"no node holds a connection named *{name_part}*")


async def stream_leader(nc: Any, stream: str) -> str:
    msg = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=10)
    info = json.loads(msg.data)
    assert "error" not in info, info
    leader: str = (info.get("cluster") or {}).get("leader") or ""
    return leader


async def move_leader_off(nc: Any, stream: str, avoid: str, timeout: float = 30.0) -> str:
    """Step the stream's leader down until it is not on node ``avoid``; returns the leader."""
    deadline = time.monotonic() + timeout
    while True:
        leader = await stream_leader(nc, stream)
        if leader and leader != avoid:
            return leader
        if time.monotonic() > deadline:
            raise AssertionError(f"the leader of {stream} stayed on {avoid}")
        if leader:
            await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", b"", timeout=10)
        await asyncio.sleep(0.2)


def node_name(broker: LocalBroker, index: int) -> str:
    return str(broker.nodes()[index]["name"])


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}{'-full' if FULL else ''}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
