"""``memphis-fast bench``: end-to-end runs with tiny settings (the report, the JSON on stdout,
the files, progress lines, Ctrl-C keeping finished runs, the Go peers skipped without go),
wrong arguments, an unreachable broker, the report's ratios and goals, the chart, and the raw
reference client's byte scanning split at every offset."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from memphis_fast.bench import cli, report
from memphis_fast.bench.runner_raw import AckCounter, _parse_deliveries


def bench(
    *args: str, timeout: float = 240, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memphis_fast.cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The bench's environment with its cache (default output directory) under tmp_path."""
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env.update(extra)
    return env


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
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    doc = json.loads(out.read_text())
    assert png.stat().st_size > 10_000
    assert out.with_suffix(".txt").read_text() in p.stdout  # the report, saved beside the JSON
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
        ("produce-batch", "raw", "pipelined"),  # the reference, run beside memphis-fast's batches
        ("consume-ack", "memphis-fast", "consume"),
        ("consume-ack", "memphis-fast", "fetch"),
        ("consume-ack", "memphis-fast", "fetch-prefetch"),
        ("consume-ack", "raw", ""),
        ("consume-ack", "raw", "one-pull"),
        ("latency", "memphis-fast", ""),
        ("latency", "raw", ""),
        ("schema-json", "memphis-fast", ""),
        ("connect", "memphis-fast", ""),
        ("connect", "raw", ""),
        ("memory-bound", "memphis-fast", ""),
    }
    if cli.has_async_for():
        expected.add(("consume-ack", "memphis-fast", "async-for"))
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
    assert "goals (128 B payloads, 1 partition, memory storage" in p.stdout and "produce-nonblocking" in p.stdout
    assert "issue" not in p.stdout.lower()  # the report speaks about the product
    assert len(doc["runs"]) == sum(r["runs"] for r in doc["results"])
    assert not (tmp_path / "bench-results").exists()
    again = bench("--from-json", str(out), "--no-png", timeout=60)  # re-render without running
    assert again.returncode == 0, again.stderr
    assert "goals (" in again.stdout and "produce-batch" in again.stdout


SMALL = ("--clients", "raw", "--paths", "produce-sync,connect", "--messages", "1000", "--payload", "128", "--partitions", "1")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_json_to_stdout_files_in_the_cache_and_progress_lines(tmp_path: Path) -> None:
    """``--json -``: only JSON on stdout (the report on stderr), no file named ``-``, nothing in
    the current directory; the chart and the text report go to the user cache; with stderr not
    a terminal, one progress line per run."""
    work = tmp_path / "work"
    work.mkdir()
    p = bench(*SMALL, "--runs", "2", "--json", "-", cwd=work, env=_env(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads(p.stdout)  # stdout is the JSON document and nothing else
    assert {(r["path"], r["client"]) for r in doc["results"]} == {("produce-sync", "raw"), ("connect", "raw")}
    assert list(work.iterdir()) == []
    assert "== 128 B payloads, 1 partition, memory storage ==" in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == 4, p.stderr
    assert lines[0].startswith("[1/4 eta ") and "produce-sync raw 128B/1p run 1: " in lines[0]
    assert "k msgs/s" in lines[0] or " msgs/s" in lines[0]
    assert lines[-1].startswith("[4/4 eta 00:00] connect raw 128B/1p run 2: p50 ")
    out_dir = tmp_path / "cache" / "memphis-fast" / "bench"
    pngs, txts = list(out_dir.glob("bench-*.png")), list(out_dir.glob("bench-*.txt"))
    assert len(pngs) == 1 and len(txts) == 1 and not list(out_dir.glob("*.json"))
    assert f"chart: {pngs[0]}" in p.stderr
    row = next(r for r in doc["results"] if r["path"] == "produce-sync")
    assert row["ok_runs"] == 2
    assert row["msgs_per_s_min"] <= row["msgs_per_s"] <= row["msgs_per_s_max"]
    assert report.spread(row) is not None


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_out_dir_and_no_files(tmp_path: Path) -> None:
    p = bench(*SMALL, "--runs", "1", "--no-progress", "--out-dir", str(tmp_path / "res"), env=_env(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    names = sorted(f.suffix for f in (tmp_path / "res").iterdir())
    assert names == [".json", ".png", ".txt"]
    q = bench(*SMALL, "--runs", "1", "--no-progress", "--no-files", cwd=tmp_path, env=_env(tmp_path))
    assert q.returncode == 0, q.stdout + q.stderr
    assert "JSON:" not in q.stdout and "chart:" not in q.stdout
    assert not (tmp_path / "cache" / "memphis-fast").exists()  # (matplotlib keeps its own cache there)


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_the_finished_runs(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "memphis_fast.cli", "bench", *SMALL, "--runs", "50", "--json", str(out), "--no-png"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
    )
    try:
        assert proc.stderr is not None
        seen = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:  # wait for two finished runs (their progress lines)
            line = proc.stderr.readline()
            if not line:
                break
            if line.startswith("["):
                seen.append(line)
                if len(seen) == 2:
                    break
        assert len(seen) == 2, seen
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted after" in stderr and "Traceback" not in stderr
    assert "INTERRUPTED after" in stdout and "== 128 B payloads" in stdout
    doc = json.loads(out.read_text())
    assert doc["meta"]["interrupted"].endswith("of 100 runs")
    assert 2 <= len(doc["runs"]) < 100
    assert all(r["ok"] for r in doc["runs"])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_go_peers_skipped_without_go(tmp_path: Path) -> None:
    """Without go on PATH the Go peers are skipped with the reason; the rest runs."""
    path = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "go").exists()
    )
    assert shutil.which("go", path=path) is None
    env = _env(tmp_path, PATH=path)
    p = bench("--clients", "raw,memphis-go,nats-go", "--paths", "connect", "--runs", "1", "--no-progress", "--json", "-", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "memphis.go (memphis-go) skipped: `go` is not on PATH" in p.stderr
    assert "skipped: nats-go: `go` is not on PATH" in p.stderr  # in the report too
    doc = json.loads(p.stdout)
    assert {r["client"] for r in doc["results"]} == {"raw"}
    assert set(doc["meta"]["skipped"]) == {"memphis-go", "nats-go"}
    q = bench("--clients", "memphis-go", "--paths", "connect", "--runs", "1", "--no-files", env=env)
    assert q.returncode == 2 and "nothing to run" in q.stderr


def test_plan_storage_partitions_and_variants() -> None:
    s = cli.Settings(
        clients=["memphis-fast", "raw"], paths=["produce-sync", "consume-ack", "connect"], messages=1000,
        payloads=[128], partitions=[1, 3], runs=1, batch=100, timeout=None, quick=False, storages=["memory", "file"],
    )  # fmt: skip
    jobs = cli.plan(s)
    configs = {(j.partitions, j.storage) for j in jobs}
    assert configs == {(1, "memory"), (3, "memory"), (1, "file"), (3, "file")}
    # connect runs once, in the base configuration; the other configurations run the throughput paths
    assert {(j.partitions, j.storage) for j in jobs if j.path == "connect"} == {(1, "memory")}
    fetch_rr = {(j.partitions, j.storage) for j in jobs if j.variant == "fetch-rr"}
    assert fetch_rr == {(3, "memory"), (3, "file")}  # only where the client's round-robin matters
    assert "128B/3p/file" in next(j.name for j in jobs if j.storage == "file" and j.partitions == 3)
    assert report.config_key(128, 3, "file") == "128B/3p/file" and report.config_key(128, 1) == "128B/1p"


def test_plan_reverses_the_client_order_on_even_runs() -> None:
    s = cli.Settings(
        clients=["memphis-fast", "raw"], paths=["produce-nonblocking"], messages=1000,
        payloads=[128], partitions=[1], runs=3, batch=100, timeout=None, quick=False, storages=["memory"],
    )  # fmt: skip
    by_run: dict[int, list[str]] = {}
    for j in cli.plan(s):
        by_run.setdefault(j.run, []).append(j.client)
    assert by_run == {1: ["memphis-fast", "raw"], 2: ["raw", "memphis-fast"], 3: ["memphis-fast", "raw"]}


def test_produce_batch_is_compared_with_the_raw_pipelined_produce_run_beside_it() -> None:
    # The plan runs the raw reference's pipelined produce in the produce-batch path, next to
    # memphis-fast's batches (odd runs after them, even runs before them).
    s = cli.Settings(
        clients=["memphis-fast", "raw"], paths=["produce-nonblocking", "produce-batch"], messages=1000,
        payloads=[128], partitions=[1], runs=2, batch=100, timeout=None, quick=False, storages=["memory"],
    )  # fmt: skip
    batch_jobs = [(j.run, j.client, j.variant) for j in cli.plan(s) if j.path == "produce-batch"]
    assert batch_jobs == [
        (1, "memphis-fast", ""), (1, "memphis-fast", "pipelined"), (1, "raw", "pipelined"),
        (2, "raw", "pipelined"), (2, "memphis-fast", "pipelined"), (2, "memphis-fast", ""),
    ]  # fmt: skip
    run = _run
    runs = [
        run("raw", "produce-nonblocking", 400.0),
        run("raw", "produce-batch", 300.0, "pipelined"),
        run("memphis-fast", "produce-batch", 290.0, "pipelined"),
        run("memphis-go", "produce-nonblocking", 100.0),
    ]
    rows = report.aggregate(runs)
    ts = {t["target"]: t for t in report.targets(rows, "128B/1p")}
    goal = ts["produce_batch vs raw reference (pipelined)"]
    # against the row beside it (290 / 300), not the produce-nonblocking one (290 / 400)
    assert goal["value"] == pytest.approx(290 / 300) and goal["met"] is True
    mine = next(r for r in rows if r["path"] == "produce-batch" and r["client"] == "memphis-fast")
    assert mine["x_raw"] == pytest.approx(290 / 300)
    assert mine["x_memphis_go"] == pytest.approx(2.9)  # the Go peers have no batch path: their pipelined produce
    # a JSON without that row (before 2026-12-03): raw's produce-nonblocking, as before
    old = report.aggregate([r for r in runs if not (r["client"] == "raw" and r["path"] == "produce-batch")])
    ts = {t["target"]: t for t in report.targets(old, "128B/1p")}
    assert ts["produce_batch vs raw reference (pipelined)"]["value"] == pytest.approx(290 / 400)


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


def _run(
    client: str, path: str, rate: float | None, variant: str = "", p50: float | None = None, run: int = 1,
    partitions: int = 1,
) -> dict[str, Any]:
    return {
        "client": client,
        "path": path,
        "variant": variant,
        "payload": 128,
        "partitions": partitions,
        "ok": True,
        "msgs_per_s": rate,
        "lat_p50_us": p50,
        "messages": 10,
        "run": run,
    }


def test_report_ratios_and_targets() -> None:
    run = _run
    runs = [
        run("memphis-fast", "produce-nonblocking", 300.0, run=1),
        run("memphis-fast", "produce-nonblocking", 100.0, run=2),
        run("memphis-fast", "produce-nonblocking", 200.0, run=3),
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
    assert (nb["msgs_per_s_min"], nb["msgs_per_s_max"]) == (100.0, 300.0)
    assert report.spread(nb) == 1.0  # (300 - 100) / 200
    assert nb["x_memphis_py"] == 10.0  # against memphis-py's best variant (limit, 20/s)
    assert nb["x_raw"] == 0.5
    assert nb["x_memphis_go"] is None  # not in this run
    batch = next(r for r in rows if r["path"] == "produce-batch")
    assert batch["x_raw"] == 0.75  # against raw's pipelined produce
    conn = next(r for r in rows if r["path"] == "connect" and r["client"] == "memphis-fast")
    assert conn["x_memphis_py"] == pytest.approx(10.0)
    ts = {t["target"]: t for t in report.targets(rows, "128B/1p")}
    assert ts["pipelined produce vs memphis-py (nonblocking)"]["met"] is False  # 10x < 15x
    assert ts["produce_batch vs raw reference (pipelined)"]["met"] is False  # 0.75x < 0.95x
    assert ts["connect median (password, localhost)"]["met"] is True
    assert ts["sync produce vs raw reference"]["met"] is None  # not measured
    assert ts["sync produce vs memphis.go SyncProduce"]["met"] is None
    text = report.targets_text(list(ts.values()), "128B/1p")
    assert "MISS" in text and "n/a" in text and "issue" not in text


def test_goals_against_the_go_peers_and_partitions() -> None:
    run = _run
    runs = [
        run("memphis-fast", "produce-sync", 12_000.0, p50=80.0),
        run("memphis-go", "produce-sync", 11_500.0, p50=85.0),
        run("nats-go", "produce-sync", 11_800.0, p50=40.0),
        run("memphis-fast", "produce-nonblocking", 350_000.0),
        run("nats-go", "produce-nonblocking", 285_000.0),
        run("memphis-go", "produce-nonblocking", 200_000.0),
        run("memphis-fast", "consume-ack", 300_000.0, "consume"),
        run("memphis-fast", "consume-ack", 250_000.0, "fetch"),
        run("memphis-fast", "consume-ack", 280_000.0, "async-for"),
        run("memphis-go", "consume-ack", 170_000.0, "fetch"),
        run("memphis-go", "consume-ack", 150_000.0, "consume"),
        run("raw", "consume-ack", 290_000.0),
        run("memphis-fast", "consume-ack", 290_000.0, "fetch", partitions=3),
        run("memphis-fast", "consume-ack", 300_000.0, "consume", partitions=3),
        run("memphis-go", "consume-ack", 160_000.0, "fetch", partitions=3),
        run("raw", "consume-ack", 300_000.0, partitions=3),
    ]
    rows = report.aggregate(runs)
    ts = {t["target"]: t for t in report.targets(rows, "128B/1p")}
    assert ts["sync produce vs memphis.go SyncProduce"]["met"] is True
    assert ts["sync produce vs nats.go js.Publish"]["value"] == pytest.approx(12_000 / 11_800)
    p50 = ts["sync produce p50 latency vs nats.go js.Publish"]
    assert p50["value"] == pytest.approx(2.0) and p50["met"] is False  # 80 us vs 40 us: > 1.5x
    assert ts["pipelined produce vs nats.go PublishAsync"]["met"] is True  # 1.23x
    assert ts["pipelined produce vs memphis.go AsyncProduce"]["met"] is True  # 1.75x
    one = ts["consume + ack by fetch() vs memphis.go, 1 partition"]
    assert one["value"] == pytest.approx(250 / 170)  # against memphis.go's best variant
    assert ts["consume + ack by fetch() vs raw reference, 1 partition"]["met"] is False  # 0.86x
    assert ts["consume + ack by consume() vs raw reference, 3 partitions"]["met"] is True
    assert ts["consume + ack by fetch() vs memphis.go, 3 partitions"]["config"] == "128B/3p"
    assert ts["consume by async for vs consume()"]["value"] == pytest.approx(280 / 300)
    table = report.table(rows)
    assert "x m.go" in table and "x nats.go" in table and "memphis.go (fetch)" in table
    assert "== 128 B payloads, 3 partitions, memory storage ==" in table


def test_chart_draws_every_panel(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    runs = []
    for k in (1, 2, 3):
        runs += [
            _run("memphis-fast", "produce-sync", 12_000.0 + k, p50=80.0, run=k),
            _run("memphis-py", "produce-sync", 7_000.0 - k, p50=130.0, run=k),
            _run("nats-go", "produce-sync", 11_000.0, p50=40.0, run=k),
            _run("memphis-fast", "latency", 8_000.0, p50=88.0 + k, run=k),
            _run("memphis-py", "latency", 700.0, p50=1400.0, run=k),
            _run("memphis-fast", "connect", None, p50=500.0, run=k),
            _run("memphis-py", "connect", None, p50=1_004_000.0, run=k),
            _run("memphis-fast", "consume-ack", 300_000.0, "consume", partitions=3, run=k),
        ]
    rows = report.aggregate(runs)
    out = tmp_path / "c.png"
    report.chart(out, rows, "test", 3)
    assert out.stat().st_size > 20_000
    assert report._ratio_label(rows[0], False) == "1.72x memphis-py · 1.09x nats.go"  # 12002/6998, 12002/11000


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_file_storage_runs_on_file_streams(tmp_path: Path) -> None:
    """``--storage file``: every row ran, and was checked (``verify``), on stations whose
    streams JetStream has on file storage; the report names the configuration."""
    p = bench(
        "--clients", "memphis-fast,raw", "--paths", "produce-nonblocking,consume-ack", "--messages", "1000",
        "--runs", "1", "--payload", "128", "--partitions", "1", "--storage", "file", "--json", "-",
        "--no-progress", env=_env(tmp_path),
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads(p.stdout)
    assert doc["runs"] and all(r["ok"] for r in doc["runs"]), [r.get("error") for r in doc["runs"]]
    assert {r["storage"] for r in doc["runs"]} == {"file"}
    assert {r["path"] for r in doc["runs"]} == {"produce-nonblocking", "consume-ack"}
    assert "== 128 B payloads, 1 partition, file storage ==" in p.stderr
    assert "stations: file storage" in p.stderr


async def test_the_storage_check_reads_the_streams(broker: Any, uid: Any) -> None:
    """The check behind every run's ``verify``: the storage of a station's streams as JetStream
    has them, so that a run on the wrong storage is an error rather than a mislabelled row."""
    from memphis_fast.bench.control import Control

    c = Control(broker.nats_kwargs(), broker.username)
    await c.connect()
    try:
        on_memory, on_file = uid("st-mem"), uid("st-file")
        await c.create_station(on_memory, 2, storage="memory")
        await c.create_station(on_file, 3, storage="file")
        try:
            assert await c.storages(on_memory, 2) == {"memory"}
            assert await c.storages(on_file, 3) == {"file"}
        finally:
            await c.delete_station(on_memory)
            await c.delete_station(on_file)
    finally:
        await c.close()
