"""The Go peers of ``memphis-fast bench`` (``benches/go``, driven by ``runner_go``): every path
once with a small count on the session's local broker, with the bench's own checks (every
message stored; for the consume paths, every message acked in order, none pending or
redelivered). Skipped only when ``go`` is not on PATH; a failed build is a failure."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from memphis_fast.bench import runner_go
from memphis_fast.bench.control import Control
from memphis_fast.bench.runner_common import CONSUMER_GROUP, make_payload
from memphis_fast.bench.runner_raw import preload
from memphis_fast.broker import LocalBroker

# A cold build (empty module cache, module proxy, 2 busy cores) takes minutes; a run seconds.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
RUN_TIMEOUT = 60.0
PAYLOAD = 128

needs_go = pytest.mark.skipif(
    shutil.which("go") is None, reason="`go` is not on PATH: the Go peers cannot be built"
)


@pytest.fixture(scope="module")
def binary() -> Path:
    if shutil.which("go") is None:
        pytest.skip("`go` is not on PATH: the Go peers cannot be built")
    built = runner_go.build()
    assert isinstance(built, Path), str(built)  # a build failure fails the tests
    return built


@pytest.fixture
async def control(broker: LocalBroker) -> AsyncIterator[Control]:
    c = Control(broker.nats_kwargs(), broker.username)
    await c.connect()
    try:
        yield c
    finally:
        await c.close()


def runner_args(
    broker: LocalBroker, station: str, path: str, variant: str, partitions: int, messages: int
) -> list[str]:
    args = [
        "--path", path, "--host", broker.host, "--port", str(broker.port), "--user", broker.username,
        "--password", broker.password, "--account-id", "1", "--connect-host", broker.host,
        "--station", station, "--partitions", str(partitions), "--payload", str(PAYLOAD),
        "--messages", str(messages), "--batch", "1000", "--connects", "2",
    ]  # fmt: skip
    if broker.nats_pid:
        args += ["--nats-pid", str(broker.nats_pid)]
    if variant:
        args += ["--variant", variant]
    return args


async def stored_until(
    control: Control, station: str, partitions: int, expect: int, timeout: float = 3.0
) -> int:
    deadline = time.monotonic() + timeout
    while True:
        n = await control.stored(station, partitions)
        if n >= expect or time.monotonic() > deadline:
            return n
        await asyncio.sleep(0.05)


CASES = [
    # client, path, variant, partitions, messages
    ("memphis-go", "produce-sync", "", 1, 300),
    ("memphis-go", "produce-sync", "", 3, 300),
    ("memphis-go", "produce-nonblocking", "", 1, 3000),
    ("memphis-go", "produce-nonblocking", "", 3, 3000),
    ("memphis-go", "consume-ack", "fetch", 1, 2500),
    ("memphis-go", "consume-ack", "fetch", 3, 2500),
    ("memphis-go", "consume-ack", "consume", 1, 2500),
    ("memphis-go", "consume-ack", "consume", 3, 2500),
    ("memphis-go", "latency", "", 1, 50),
    ("nats-go", "produce-sync", "", 1, 300),
    ("nats-go", "produce-sync", "", 3, 300),
    ("nats-go", "produce-nonblocking", "", 1, 3000),
    ("nats-go", "produce-nonblocking", "", 3, 3000),
    ("nats-go", "consume-ack", "", 1, 2500),
    ("nats-go", "consume-ack", "", 3, 2500),
    ("nats-go", "latency", "", 1, 50),
]


@needs_go
@pytest.mark.parametrize(("client", "path", "variant", "partitions", "messages"), CASES)
async def test_path_stores_every_message(
    binary: Path, broker: LocalBroker, control: Control, uid: Callable[[str], str],
    client: str, path: str, variant: str, partitions: int, messages: int,
) -> None:  # fmt: skip
    station = uid(f"go-{path}")
    await control.create_station(station, partitions)
    try:
        if path in ("consume-ack", "latency"):
            await control.create_consumer_group(station, CONSUMER_GROUP)
        if path == "consume-ack":
            stored = await asyncio.to_thread(
                preload, broker.host, broker.port, station, partitions, messages, make_payload(PAYLOAD),
                user=broker.nats_user, password=broker.password,
            )  # fmt: skip
            assert stored == messages
        args = runner_args(broker, station, path, variant, partitions, messages)
        res = await asyncio.to_thread(runner_go.run, client, args, timeout=RUN_TIMEOUT)
        assert res["ok"], res.get("error")
        assert (res["client"], res["path"], res["variant"]) == (client, path, variant)
        assert (res["payload"], res["partitions"], res["messages"]) == (PAYLOAD, partitions, messages)
        assert res["msgs_per_s"] > 0 and res["seconds"] > 0
        assert res["client_cpu_us_per_msg"] > 0 and res["peak_rss_mb"] > 1
        if broker.nats_pid:
            assert res["server_cpu_us_per_msg"] is not None
        if path in ("produce-sync", "latency"):
            assert 0 < res["lat_p50_us"] <= res["lat_p99_us"]
        else:
            assert res["lat_p50_us"] is None
        # The bench's checks (cli.Bench.verify).
        if path.startswith("produce"):
            expect = messages + int(res["extra"].get("warmup", 0))
            assert await stored_until(control, station, partitions, expect) == expect
            if client == "memphis-go" and path == "produce-nonblocking":
                # memphis.go reports no async acks: the closing sync produce per partition
                # ends the timed section only once everything before it is stored.
                assert res["extra"]["stored_at_stop"] == expect
        if path == "latency":
            assert await control.stored(station, partitions) == messages
        if path in ("consume-ack", "latency"):
            assert res["acked"] == messages
            st = await control.wait_acked(station, partitions, CONSUMER_GROUP, messages)
            assert st["ack_floor"] == messages, st
            assert st["ack_pending"] == 0 and st["pending"] == 0 and st["redelivered"] == 0, st
    finally:
        await control.delete_station(station)


@needs_go
@pytest.mark.parametrize("client", runner_go.CLIENTS)
async def test_connect_path(binary: Path, broker: LocalBroker, client: str) -> None:
    args = runner_args(broker, "", "connect", "", 1, 100)
    res = await asyncio.to_thread(runner_go.run, client, args, timeout=RUN_TIMEOUT)
    assert res["ok"], res.get("error")
    assert res["extra"] == {"connects": 2, "host": broker.host}
    assert 0 < res["lat_p50_us"] <= res["lat_p99_us"]


@needs_go
def test_unsupported_path_and_bad_arguments(binary: Path, broker: LocalBroker) -> None:
    res = runner_go.run("nats-go", runner_args(broker, "s", "produce-batch", "", 1, 100), timeout=RUN_TIMEOUT)
    assert res["ok"] is False and res.get("unsupported") is True
    assert "not implemented by nats-go" in res["error"]
    res = runner_go.run("memphis-go", ["--path", "produce-sync", "--no-such-flag"], timeout=RUN_TIMEOUT)
    assert res["ok"] is False and "exited with 2" in res["error"]
    assert "skipped" not in res


@needs_go
def test_build_is_cached(binary: Path) -> None:
    mtime = binary.stat().st_mtime_ns
    runner_go._built.clear()  # a new bench process: the disk cache answers
    again = runner_go.build()
    assert again == binary and binary.stat().st_mtime_ns == mtime
    assert runner_go.command("nats-go") == [str(binary), "--client", "nats-go"]
    # The binary lives outside the source tree.
    assert runner_go.source_dir() not in binary.parents
    v = runner_go.versions()
    assert v["memphis.go"] == "v1.3.2" and v["nats.go"] and v["go"]


def test_without_go_every_entry_point_says_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `go` here
    runner_go._built.clear()
    built = runner_go.build()
    assert isinstance(built, runner_go.Skipped)
    assert str(built).startswith("skipped: ") and "`go` is not on PATH" in built.reason
    assert isinstance(runner_go.command("memphis-go"), runner_go.Skipped)
    res: dict[str, Any] = runner_go.run("memphis-go", ["--path", "produce-sync", "--partitions", "3"])
    assert res["ok"] is False and res["error"].startswith("skipped: ") and res["skipped"] == built.reason
    assert (res["client"], res["path"], res["partitions"]) == ("memphis-go", "produce-sync", 3)


def test_without_sources_says_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMPHIS_FAST_BENCH_GO_DIR", str(tmp_path / "missing"))
    built = runner_go.build()
    assert isinstance(built, runner_go.Skipped)
    reason = built.reason
    assert ("not on PATH" in reason) if shutil.which("go") is None else ("sources are not here" in reason)
    assert os.fspath(tmp_path) in reason or "not on PATH" in reason


@needs_go
@pytest.mark.parametrize(
    ("client", "variant"), [("memphis-go", "fetch"), ("memphis-go", "consume"), ("nats-go", "")]
)
async def test_consume_needs_the_preloaded_messages(
    binary: Path, broker: LocalBroker, control: Control, uid: Callable[[str], str], client: str, variant: str
) -> None:
    """Fewer messages waiting than the run asks for: a clear failure at once, no pull left
    waiting for its expiry over and over."""
    station = uid("go-short")
    await control.create_station(station, 2)
    try:
        await control.create_consumer_group(station, CONSUMER_GROUP)
        payload = make_payload(PAYLOAD)
        assert await asyncio.to_thread(
            preload, broker.host, broker.port, station, 2, 100, payload, user=broker.nats_user, password=broker.password
        ) == 100  # fmt: skip
        t0 = time.monotonic()
        args = runner_args(broker, station, "consume-ack", variant, 2, 200)
        res = await asyncio.to_thread(runner_go.run, client, args, timeout=RUN_TIMEOUT)
        assert res["ok"] is False
        assert "only 100 messages wait for bench-cg" in res["error"] and "needs 200" in res["error"]
        assert time.monotonic() - t0 < 20
    finally:
        await control.delete_station(station)
