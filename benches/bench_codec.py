"""Codec benchmark (issue 2): memphis-fast's Rust core against nats-py's pure-Python codec,
measured from Python with the FFI call included and Python objects out, on the same input, in
the same run. Every compared result is checked for correctness before any time counts.

Parser: a stream of ``HMSG`` frames as a JetStream consumer receives them (a ``$JS.ACK``
reply subject, the two Memphis headers, a 128-byte payload), cut into 64 KiB reads.

* ``memphis-fast feed (in place)``: the read is copied into the core's own receive buffer
  through its buffer export (what ``recv_into`` does for the asyncio protocol), then
  ``feed(n)`` + ``take_msgs()`` give ``Msg`` objects.
* ``memphis-fast feed_bytes``: the same through the copying entry point.
* ``nats-py Parser``: ``nats.protocol.parser.Parser`` driven by a minimal client object whose
  ``_process_msg`` collects ``(sid, subject, reply, payload, header bytes)``.
* ``... + headers``: the same, but every message also has its headers as a dict: ``Msg.headers``
  for memphis-fast; nats-py's own ``Client._process_headers`` and ``Client._build_message`` (a
  ``nats.aio.msg.Msg``) for nats-py, which is what its client does per message.

Encoder: HPUB frames to a JetStream subject with a per-message reply inbox and the two Memphis
headers, flushed (one bytes object) every 1000 messages, as a connection writes once per tick.

* ``memphis-fast js_publish``: one ``Core.js_publish`` call per message (the producer's
  constant header lines prepared once, in-flight tracking included) + ``take_out()``.
* ``memphis-fast js_publish_batch``: 1000 messages per call + ``take_out()``.
* ``memphis-fast publish(headers=dict)``: ``Core.publish`` with the reply and a headers dict
  encoded per message + ``take_out()``.
* ``nats-py hpub_cmd``: ``nats.protocol.command.hpub_cmd`` with the header block prepared once,
  joined per 1000 (nats-py's ``_flush_pending`` joins its pending list).
* ``nats-py _send_publish(headers=dict)``: nats-py's own publish encoder (headers dict to
  header block, ``hpub_cmd``, stats) with ``_send_command`` collecting the bytes.

Outputs: the parsers must yield the expected subject, sid, reply, payload and headers for
every message; the encoders must produce byte-identical streams.

Run: ``.venv/bin/python benches/bench_codec.py [--messages N] [--rounds R] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import nats.aio.client
from nats.protocol import command as nats_command
from nats.protocol.parser import Parser as NatsParser

from memphis_fast import _core

SUBJECT = "orders#eu$1.final"
SID = 2  # sid 1 is the core's muxed inbox
PRODUCED_BY = "producer-1"
CONNECTION_ID = "8f2c1a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
HEADERS = {"$memphis_producedBy": PRODUCED_BY, "$memphis_connectionId": CONNECTION_ID}
HEADER_LINES = b"".join(f"{k}: {v}\r\n".encode() for k, v in HEADERS.items())
HEADER_BLOCK = b"NATS/1.0\r\n" + HEADER_LINES + b"\r\n"
READ_SIZE = 64 * 1024
FLUSH_EVERY = 1000
INBOX = "_INBOX.bench"


def payload(i: int) -> bytes:
    return f"{i:010d}".encode().ljust(128, b"x")


def reply_for(i: int) -> str:
    return f"$JS.ACK.orders#eu$1.billing.1.{i + 1}.{i + 1}.{1716200000000000000 + i}.{0}"


# -- parser cases ------------------------------------------------------------------------------
def make_stream(n: int) -> list[bytes]:
    frames = []
    for i in range(n):
        p = payload(i)
        frames.append(
            f"HMSG {SUBJECT} {SID} {reply_for(i)} {len(HEADER_BLOCK)} {len(HEADER_BLOCK) + len(p)}\r\n".encode()
            + HEADER_BLOCK
            + p
            + b"\r\n"
        )
    stream = b"".join(frames)
    return [stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]


def new_core() -> _core.Core:
    core = _core.Core(INBOX)
    sid = core.subscribe(SUBJECT)
    assert sid == SID
    return core


def fast_in_place(reads: list[bytes]) -> list[Any]:
    core = new_core()
    out: list[Any] = []
    for data in reads:
        # Like recv_into: each read fills what the buffer offers, the rest comes next time.
        src = memoryview(data)
        while src:
            view = memoryview(core.prepare_recv())
            n = min(len(view), len(src))
            view[:n] = src[:n]
            view.release()
            src = src[n:]
            if core.feed(n):
                for _sid, msgs in core.take_msgs():
                    out += msgs
    return out


def fast_feed_bytes(reads: list[bytes]) -> list[Any]:
    core = new_core()
    out: list[Any] = []
    for data in reads:
        if core.feed_bytes(data):
            for _sid, msgs in core.take_msgs():
                out += msgs
    return out


def fast_with_headers(reads: list[bytes]) -> list[Any]:
    out = fast_in_place(reads)
    return [(m, m.headers) for m in out]


class _Collect:
    """The minimal client nats-py's parser needs for messages."""

    def __init__(self) -> None:
        self.out: list[Any] = []

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
        self.out.append((sid, subject, reply, data, headers))


class _Build(nats.aio.client.Client):
    """nats-py's own per-message work: parse the header block, build a ``nats.aio.msg.Msg``."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[Any] = []

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
        hdr = await self._process_headers(headers)
        self.out.append(self._build_message(sid, subject, reply, data, hdr))


LOOP: asyncio.AbstractEventLoop | None = None


def run(coro: Any) -> Any:
    assert LOOP is not None
    return LOOP.run_until_complete(coro)


def natspy_parse(reads: list[bytes]) -> list[Any]:
    client = _Collect()
    parser = NatsParser(client)

    async def go() -> None:
        for data in reads:
            await parser.parse(data)

    run(go())
    return client.out


def natspy_with_headers(reads: list[bytes]) -> list[Any]:
    client = _Build()
    parser = NatsParser(client)

    async def go() -> None:
        for data in reads:
            await parser.parse(data)

    run(go())
    return client.out


def check_parsed(name: str, out: list[Any], n: int) -> None:
    assert len(out) == n, f"{name}: {len(out)} messages, expected {n}"
    for i, item in enumerate(out):
        p, r = payload(i), reply_for(i)
        if name.startswith("memphis-fast"):
            m, hdrs = item if isinstance(item, tuple) else (item, None)
            ok = m.subject == SUBJECT and m.sid == SID and m.reply == r and m.data == p
            ok = ok and m.header_block_bytes == HEADER_BLOCK
            ok = ok and (hdrs is None or hdrs == HEADERS)
        elif isinstance(item, tuple):
            sid, subject, reply, data, headers = item
            ok = (sid, subject, reply, data, headers) == (SID, SUBJECT.encode(), r.encode(), p, HEADER_BLOCK)
        else:
            ok = (item.subject, item.reply, item.data, item.headers) == (SUBJECT, r, p, HEADERS)
        assert ok, f"{name}: message {i} differs: {item!r}"


# -- encoder cases -----------------------------------------------------------------------------
def connected_core() -> _core.Core:
    core = _core.Core(INBOX)
    core.start_session("{}")
    core.feed_bytes(b"PONG\r\n")
    core.session_ready()
    core.take_out()
    return core


def enc_fast_js(payloads: list[bytes], replies: list[str]) -> list[bytes]:
    core = connected_core()
    js_publish, take_out = core.js_publish, core.take_out
    out = []
    for i, p in enumerate(payloads):
        js_publish(SUBJECT, p, 1, i, 15_000, False, HEADER_LINES)
        if i % FLUSH_EVERY == FLUSH_EVERY - 1:
            out.append(take_out())
    rest = take_out()
    if rest is not None:
        out.append(rest)
    return out


def enc_fast_batch(payloads: list[bytes], replies: list[str]) -> list[bytes]:
    core = connected_core()
    out = []
    for start in range(0, len(payloads), FLUSH_EVERY):
        core.js_publish_batch(SUBJECT, payloads[start : start + FLUSH_EVERY], 1, 15_000, HEADER_LINES)
        out.append(core.take_out())
    return out


def enc_fast_publish_dict(payloads: list[bytes], replies: list[str]) -> list[bytes]:
    core = connected_core()
    publish, take_out = core.publish, core.take_out
    out = []
    for i, p in enumerate(payloads):
        publish(SUBJECT, p, replies[i], HEADERS)
        if i % FLUSH_EVERY == FLUSH_EVERY - 1:
            out.append(take_out())
    rest = take_out()
    if rest is not None:
        out.append(rest)
    return out


def enc_natspy_hpub(payloads: list[bytes], replies: list[str]) -> list[bytes]:
    hpub = nats_command.hpub_cmd
    out = []
    pending: list[bytes] = []
    for i, p in enumerate(payloads):
        pending.append(hpub(SUBJECT, replies[i], HEADER_BLOCK, p))
        if i % FLUSH_EVERY == FLUSH_EVERY - 1:
            out.append(b"".join(pending))
            pending = []
    if pending:
        out.append(b"".join(pending))
    return out


def enc_natspy_send_publish(payloads: list[bytes], replies: list[str]) -> list[bytes]:
    client = nats.aio.client.Client()
    pending: list[bytes] = []

    async def send_command(cmd: bytes, priority: bool = False) -> None:
        pending.append(cmd)

    client._send_command = send_command  # type: ignore[method-assign]
    out: list[bytes] = []

    async def go() -> None:
        nonlocal pending
        send = client._send_publish
        for i, p in enumerate(payloads):
            await send(SUBJECT, replies[i], p, len(p), HEADERS)
            if i % FLUSH_EVERY == FLUSH_EVERY - 1:
                out.append(b"".join(pending))
                pending = []
        if pending:
            out.append(b"".join(pending))

    run(go())
    return out


# -- harness -----------------------------------------------------------------------------------
def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn(*args)
        return time.perf_counter() - t0, out
    finally:
        gc.enable()


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "memphis_fast": _core.VERSION,
        "memphis_fast_core": str(Path(_core.__file__ or "").name),
        "nats_py": metadata.version("nats-py"),
        "rustc": out(["rustc", "--version"]),
        "git": out(["git", "rev-parse", "--short", "HEAD"]),
        "loadavg_at_start": list(os.getloadavg()),
    }


def main() -> None:
    global LOOP
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU")
    ap.add_argument("--json", type=Path, default=Path("bench-results/codec.json"))
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    n = args.messages
    LOOP = asyncio.new_event_loop()

    reads = make_stream(n)
    payloads = [payload(i) for i in range(n)]
    replies = [f"{INBOX}.{i + 1}" for i in range(n)]

    parse_cases: dict[str, Callable[[list[bytes]], list[Any]]] = {
        "memphis-fast feed (in place)": fast_in_place,
        "memphis-fast feed_bytes": fast_feed_bytes,
        "nats-py Parser": natspy_parse,
        "memphis-fast feed (in place) + headers": fast_with_headers,
        "nats-py Parser + headers (nats Msg)": natspy_with_headers,
    }
    enc_cases: dict[str, Callable[[list[bytes], list[str]], list[bytes]]] = {
        "memphis-fast js_publish": enc_fast_js,
        "memphis-fast js_publish_batch": enc_fast_batch,
        "memphis-fast publish(headers=dict)": enc_fast_publish_dict,
        "nats-py hpub_cmd": enc_natspy_hpub,
        "nats-py _send_publish(headers=dict)": enc_natspy_send_publish,
    }

    # Correctness first: nothing is timed unless every compared result is right.
    for name, pfn in parse_cases.items():
        check_parsed(name, pfn(reads), n)
    reference = b"".join(enc_natspy_hpub(payloads, replies))
    expected_prefix = (
        f"HPUB {SUBJECT} {INBOX}.1 {len(HEADER_BLOCK)} {len(HEADER_BLOCK) + 128}\r\n".encode() + HEADER_BLOCK
    )
    assert reference.startswith(expected_prefix)
    for name, efn in enc_cases.items():
        got = b"".join(efn(payloads, replies))
        assert got == reference, (
            f"{name}: output differs from nats-py's ({len(got)} vs {len(reference)} bytes)"
        )

    rates: dict[str, list[float]] = {name: [] for name in [*parse_cases, *enc_cases]}
    for _ in range(args.rounds):
        # Interleaved, so that machine noise hits every case alike.
        for name, pfn in parse_cases.items():
            dt, _out = timed(pfn, reads)
            rates[name].append(n / dt)
        for name, efn in enc_cases.items():
            dt, _out = timed(efn, payloads, replies)
            rates[name].append(n / dt)

    med = {name: statistics.median(v) for name, v in rates.items()}
    comparisons = [
        ("parse", "memphis-fast feed (in place)", "nats-py Parser"),
        ("parse", "memphis-fast feed_bytes", "nats-py Parser"),
        ("parse + headers", "memphis-fast feed (in place) + headers", "nats-py Parser + headers (nats Msg)"),
        ("encode", "memphis-fast js_publish", "nats-py hpub_cmd"),
        ("encode", "memphis-fast js_publish_batch", "nats-py hpub_cmd"),
        (
            "encode (headers dict)",
            "memphis-fast publish(headers=dict)",
            "nats-py _send_publish(headers=dict)",
        ),
        ("encode (headers dict)", "memphis-fast js_publish", "nats-py _send_publish(headers=dict)"),
    ]
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "messages": n,
        "rounds": args.rounds,
        "machine": machine(),
        "cases": {
            name: {
                "median_msgs_per_s": med[name],
                "min": min(v),
                "max": max(v),
                "runs": v,
            }
            for name, v in rates.items()
        },
        "ratios": [
            {
                "what": what,
                "ours": a,
                "theirs": b,
                "ratio_of_medians": med[a] / med[b],
                # Both measured in the same round, seconds apart: robust to load that drifts.
                "median_paired_ratio": statistics.median(
                    x / y for x, y in zip(rates[a], rates[b], strict=True)
                ),
            }
            for what, a, b in comparisons
        ],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))

    width = max(len(k) for k in rates)
    print(f"{n} messages, {args.rounds} rounds, median (min..max) messages/s")
    for name in rates:
        print(f"  {name:<{width}}  {med[name]:>12,.0f}  ({min(rates[name]):,.0f}..{max(rates[name]):,.0f})")
    print("ratios: of the medians / median of the per-round ratios")
    for r in result["ratios"]:
        print(
            f"  {r['what']:<22} {r['ours']} / {r['theirs']}: "
            f"{r['ratio_of_medians']:.1f}x / {r['median_paired_ratio']:.1f}x"
        )
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
