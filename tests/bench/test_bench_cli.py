"""``memphis-fast bench``: an end-to-end smoke run with tiny settings, wrong arguments, an
unreachable broker, and the raw reference client's byte scanning split at every offset."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memphis_fast.bench import report
from memphis_fast.bench.runner_raw import AckCounter, _parse_deliveries


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memphis_fast.cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_smoke_run_writes_json_and_chart(tmp_path: Path) -> None:
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    p = bench(
        "--clients",
        "memphis-fast,raw",
        "--messages",
        "400",
        "--runs",
        "1",
        "--payload",
        "128",
        "--partitions",
        "1",
        "--no-progress",
        "--json",
        str(out),
        "--png",
        str(png),
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    doc = json.loads(out.read_text())
    assert png.stat().st_size > 10_000
    meta = doc["meta"]
    assert meta["machine"]["nproc"] >= 1
    assert meta["versions"]["nats-server"] and meta["versions"]["python"]
    assert meta["command"].startswith("memphis-fast bench ")
    rows = {(r["path"], r["client"], r["variant"]): r for r in doc["results"]}
    expected = {
        ("produce-sync", "memphis-fast", ""),
        ("produce-sync", "raw", ""),
        ("produce-nonblocking", "memphis-fast", ""),
        ("produce-nonblocking", "raw", ""),
        ("produce-batch", "memphis-fast", ""),
        ("produce-batch", "memphis-fast", "pipelined"),
        ("consume-ack", "memphis-fast", "consume"),
        ("consume-ack", "memphis-fast", "fetch"),
        ("consume-ack", "raw", ""),
        ("latency", "memphis-fast", ""),
        ("latency", "raw", ""),
        ("schema-json", "memphis-fast", ""),
        ("connect", "memphis-fast", ""),
        ("connect", "raw", ""),
        ("memory-bound", "memphis-fast", ""),
    }
    assert set(rows) == expected
    for key, r in rows.items():
        assert r["ok"], (key, r["errors"])
        if key[0] in ("connect", "latency"):
            assert r["lat_p50_us"] > 0
        if key[0] not in ("connect", "memory-bound"):
            assert r["msgs_per_s"] > 0 and r["client_cpu_us_per_msg"] > 0
            assert r["server_cpu_us_per_msg"] is not None  # the local broker's nats-server pid is known
            assert r["peak_rss_mb"] > 5
    assert rows[("produce-batch", "memphis-fast", "")]["x_raw"] is not None
    mem = rows[("memory-bound", "memphis-fast", "")]["memory"]
    assert mem["blocked_all_runs"] and mem["within_bound_all_runs"]
    assert {t["target"] for t in doc["targets"]} >= {
        "connect median (password, localhost)",
        "memory bound with nats-server stopped",
    }
    assert "targets (issue 6" in p.stdout and "produce-nonblocking" in p.stdout
    assert len(doc["runs"]) == sum(r["runs"] for r in doc["results"])
    again = bench("--from-json", str(out), "--no-png", timeout=60)  # re-render without running
    assert again.returncode == 0, again.stderr
    assert "targets (issue 6" in again.stdout and "produce-batch" in again.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["--clients", "memphis-fast,kafka"], "unknown 'kafka'"),
        (["--paths", "produce"], "unknown 'produce'"),
        (["--runs", "0"], "must be at least 1"),
        (["--messages", "ten"], "not an integer"),
        (["--payload", "128,abc"], "not an integer"),
        (["--partitions", "0"], "out of range"),
        (["--port", "6666"], "need --host"),
        (["--host", "127.0.0.1"], "give --password or --token"),
        (["--host", "127.0.0.1", "--password", "a", "--token", "b"], "not both"),
    ],
)
def test_wrong_arguments(args: list[str], message: str) -> None:
    p = bench(*args, "--no-progress", "--no-json", "--no-png", timeout=60)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr
    assert "Traceback" not in p.stderr


def test_unreachable_broker() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the bench runs: nothing listens there
    p = bench(
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--password",
        "x",
        "--no-progress",
        "--no-json",
        "--no-png",
        timeout=60,
    )
    assert p.returncode == 1
    assert f"cannot reach the broker at 127.0.0.1:{port}" in p.stderr
    assert "Traceback" not in p.stderr


def test_wrong_password_is_a_clear_error() -> None:
    from memphis_fast.broker import LocalBroker

    with LocalBroker(memory=True, log_level="warning") as b:
        p = bench(
            "--host",
            b.host,
            "--port",
            str(b.port),
            "--password",
            "wrong",
            "--clients",
            "raw",
            "--paths",
            "connect",
            "--runs",
            "1",
            "--no-progress",
            "--no-json",
            "--no-png",
            timeout=60,
        )
    assert p.returncode == 1, p.stdout + p.stderr
    assert "cannot connect to the broker" in p.stderr
    assert "Traceback" not in p.stderr


# -- the raw reference client's scanning, split at every offset ---------------------------------
class FakeClient:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def recv(self) -> bytes:
        return self.chunks.pop(0)


ACKS = (
    b'MSG _INBOX.rawack 1 30\r\n{"stream":"s$1","seq":1}\r\n'
    b'MSG _INBOX.rawack 1 48\r\n{"stream":"s$1","seq":2,"duplicate":true}\r\n'
    b'MSG _INBOX.rawack 1 63\r\n{"error":{"code":503,"err_code":10077,"description":"no"}}\r\n'
    b'MSG _INBOX.rawack 1 30\r\n{"stream":"s$1","seq":3}\r\n'
)


def test_ack_counter_split_anywhere() -> None:
    for cut in range(1, len(ACKS)):
        c = AckCounter(FakeClient([ACKS[:cut], ACKS[cut:]]))  # type: ignore[arg-type]
        c.read()
        c.read()
        assert (c.acked, c.errors) == (3, 1), cut


DELIVERIES = (
    b"HMSG _INBOX.rawpull.1 1 $JS.ACK.s.cg.1.1.1.0.0 12 17\r\nNATS/1.0\r\n\r\nhello\r\n"
    b"PING\r\n"
    b"HMSG _INBOX.rawpull.1 1 28 28\r\nNATS/1.0 408 Request Timeout\r\n\r\n\r\n\r\n"
    b"MSG _INBOX.rawack 7 2\r\nok\r\n"
)


def test_parse_deliveries_split_anywhere() -> None:
    whole, used = _parse_deliveries(DELIVERIES)
    assert used == len(DELIVERIES)
    assert [(sid, reply) for sid, reply, _ in whole] == [
        (1, b"$JS.ACK.s.cg.1.1.1.0.0"),
        (-1, None),
        (1, None),
        (7, None),
    ]
    assert whole[2][2].startswith(b"NATS/1.0 408")
    for cut in range(1, len(DELIVERIES)):
        first, used = _parse_deliveries(DELIVERIES[:cut])
        rest, used2 = _parse_deliveries(DELIVERIES[used:])
        assert used + used2 == len(DELIVERIES)
        assert [f[:2] for f in first + rest] == [f[:2] for f in whole], cut


def test_report_ratios_and_targets() -> None:
    def run(
        client: str, path: str, rate: float | None, variant: str = "", p50: float | None = None
    ) -> dict[str, Any]:
        return {
            "client": client,
            "path": path,
            "variant": variant,
            "payload": 128,
            "partitions": 1,
            "ok": True,
            "msgs_per_s": rate,
            "lat_p50_us": p50,
            "messages": 10,
        }

    runs = [
        run("memphis-fast", "produce-nonblocking", 300.0),
        run("memphis-fast", "produce-nonblocking", 100.0),
        run("memphis-fast", "produce-nonblocking", 200.0),
        run("memphis-py", "produce-nonblocking", 10.0),
        run("memphis-py", "produce-nonblocking", 20.0, "limit"),
        run("raw", "produce-nonblocking", 400.0),
        run("memphis-fast", "produce-batch", 300.0),
        run("memphis-fast", "connect", None, p50=900.0),
        run("memphis-py", "connect", None, p50=9000.0),
    ]
    rows = report.aggregate(runs)
    nb = next(r for r in rows if r["path"] == "produce-nonblocking" and r["client"] == "memphis-fast")
    assert nb["msgs_per_s"] == 200.0  # the median
    assert nb["x_memphis_py"] == 10.0  # against memphis-py's best variant (limit, 20/s)
    assert nb["x_raw"] == 0.5
    batch = next(r for r in rows if r["path"] == "produce-batch")
    assert batch["x_raw"] == 0.75  # against raw's pipelined produce
    conn = next(r for r in rows if r["path"] == "connect" and r["client"] == "memphis-fast")
    assert conn["x_memphis_py"] == pytest.approx(10.0)
    ts = {t["target"]: t for t in report.targets(rows, "128B/1p")}
    assert ts["nonblocking produce vs memphis-py nonblocking"]["met"] is False  # 10x < 15x
    assert ts["produce_batch vs raw pipelined"]["met"] is True
    assert ts["connect median (password, localhost)"]["met"] is True
    assert ts["sync produce vs raw sync"]["met"] is None  # not measured
    assert "MISS" in report.targets_text(list(ts.values()))
