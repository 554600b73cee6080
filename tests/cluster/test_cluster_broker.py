"""The local broker's cluster mode (``memphis-fast broker --cluster N``, ``LocalBroker(cluster=N)``):
the nodes form one JetStream cluster, stations take replicas up to N, the broker's own streams
have min(3, N) replicas, a restart keeps everything, and the control plane answers again
within 10 s of losing any one node."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from cluster_helpers import http_json, memphis_connect, quiet, stream_leader

import memphis_fast
from memphis_fast import _subjects as subjects
from memphis_fast.broker import LocalBroker
from memphis_fast.broker.dls import ADVISORY_STREAM
from memphis_fast.broker.store import BUCKET

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]


async def js(nc: Any, api: str, body: Any = None) -> dict[str, Any]:
    msg = await nc.request(f"$JS.API.{api}", b"" if body is None else json.dumps(body).encode(), timeout=10)
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def test_cluster_nodes_and_replicas(cluster: LocalBroker, name: Callable[[str], str]) -> None:
    info = cluster.refresh_info()
    nodes = cluster.nodes()
    assert info["cluster"] == 3 and len(nodes) == 3
    assert len({n["port"] for n in nodes}) == 3 and len({n["pid"] for n in nodes}) == 3
    # broker.json (in the data directory) lists every node's client URL.
    assert cluster.data_dir is not None
    on_disk = json.loads((cluster.data_dir / "broker.json").read_text())
    assert on_disk["servers"] == [f"nats://127.0.0.1:{n['port']}" for n in nodes]
    assert on_disk["nats_version"] == "2.10.26"
    # One JetStream cluster: every node sees the same meta leader and 3 peers.
    leaders = set()
    for n in nodes:
        jsz = http_json(f"{n['monitor']}/jsz")
        meta = jsz["meta_cluster"]
        assert meta["name"] == "memphis-fast" and meta["cluster_size"] == 3, meta
        leaders.add(meta["leader"])
    assert len(leaders) == 1 and leaders != {""}

    nc = await nats.connect(**cluster.nats_kwargs(), error_cb=quiet)
    m = await memphis_connect(cluster)
    try:
        # The broker's own streams are replicated (min(3, N) = 3).
        for stream in (f"KV_{BUCKET}", ADVISORY_STREAM):
            si = await js(nc, f"STREAM.INFO.{stream}")
            assert si["config"]["num_replicas"] == 3, si
            assert len(si["cluster"]["replicas"]) == 2, si
        # Stations take replicas up to N; 2 becomes 3 as on the real broker.
        for asked, expected in ((3, 3), (2, 3), (1, 1)):
            st = name(f"r{asked}")
            await m.station(st, replicas=asked, timeout_retries=0)
            si = await js(nc, f"STREAM.INFO.{subjects.stream_name(st, 1)}")
            assert si["config"]["num_replicas"] == expected, si
        with pytest.raises(memphis_fast.MemphisError, match="replicas count is larger than the cluster size"):
            await m.station(name("r5"), replicas=5, timeout_retries=0)
        # A replicated station works end to end, through a client given every node.
        st = name("e2e")
        await m.station(st, replicas=3, timeout_retries=0)
        p = await m.producer(st, "p", timeout_retries=0)
        for i in range(20):
            await p.produce(f"m{i}".encode(), msg_id=f"id-{i}")
        batch = await m.fetch_messages(st, "c", batch_size=20)
        assert sorted(bytes(msg.get_data()).decode() for msg in batch) == sorted(f"m{i}" for i in range(20))
        for msg in batch:
            await msg.ack()
        assert await stream_leader(nc, subjects.stream_name(st, 1))
    finally:
        await m.close()
        await nc.close()


async def test_a_duplicate_still_in_process_is_not_taken_as_stored(
    cluster: LocalBroker, name: Callable[[str], str]
) -> None:
    """A replicated stream's leader records a msg_id before it proposes the message and learns
    its sequence only once the proposal is committed; a copy arriving in between is answered
    "duplicate, sequence 0" (nats-server 2.10). That answer does not say the message is stored
    (the proposal can still be lost with a leader change: the copy after a reconnect or a silent
    resend is what gets it), so memphis-fast asks again until the server names the sequence.
    Both copies here are written at once, so the second one meets the first one's proposal."""
    st = name("inproc")
    stream = subjects.stream_name(st, 1)
    nc = await nats.connect(**cluster.nats_kwargs(), error_cb=quiet)
    m = await memphis_connect(cluster)
    try:
        await m.station(st, replicas=3, timeout_retries=0)
        # The premise, with nats-py: the second copy is answered with sequence 0.
        js_ctx = nc.jetstream(timeout=10)
        subject = f"{stream}.final"
        zero_seen = 0
        raw = 0
        for i in range(20):
            raw += 1
            hdrs = {"Nats-Msg-Id": f"raw-{i}"}
            first, second = await asyncio.gather(
                js_ctx.publish(subject, b"raw", headers=hdrs), js_ctx.publish(subject, b"raw", headers=hdrs)
            )
            assert first.seq > 0 and not first.duplicate, first
            assert second.duplicate, second
            if second.seq == 0:
                zero_seen += 1
                break
        assert zero_seen, "nats-server never answered a copy in process with sequence 0"
        # memphis-fast: every copy ends stored with the sequence of the one stored message.
        p = await m.producer(st, "p", timeout_retries=0)
        for i in range(10):
            results = await p.produce_batch([b"a", b"b"], msg_ids=[f"dup-{i}", f"dup-{i}"])
            assert [r.stored for r in results] == [True, True], results
            assert [r.duplicate for r in results] == [False, True], results
            assert results[0].sequence and results[1].sequence == results[0].sequence, results
        si = await js(nc, f"STREAM.INFO.{stream}")
        assert si["state"]["messages"] == raw + 10, si
    finally:
        await m.close()
        await nc.close()


async def test_cluster_restart_keeps_everything(
    cluster_factory: Callable[..., LocalBroker], name: Callable[[str], str], tmp_path: Path
) -> None:
    broker = cluster_factory(3, data_dir=tmp_path / "data")
    st = name("keep")
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"n": {"type": "number"}}}))
    m = await memphis_connect(broker)
    try:
        await m.create_schema("keep-schema", "json", str(schema), timeout_retries=0)
        await m.station(st, replicas=3, schema_name="keep-schema", timeout_retries=0)
        p = await m.producer(st, "p", timeout_retries=0)
        for i in range(50):
            await p.produce({"n": i}, msg_id=f"k{i}")
    finally:
        await m.close()
    ports = list(broker.node_ports or [])
    await asyncio.to_thread(broker.restart)
    broker.wait_healthy(60)
    assert broker.node_ports == ports  # the same client ports: clients reconnect
    assert st in {s["name"] for s in await broker.list_stations()}
    assert "keep-schema" in {s["name"] for s in await broker.list_schemas()}
    nc = await nats.connect(**broker.nats_kwargs(), error_cb=quiet)
    try:
        si = await js(nc, f"STREAM.INFO.{subjects.stream_name(st, 1)}")
        assert si["state"]["messages"] == 50 and si["config"]["num_replicas"] == 3, si
    finally:
        await nc.close()
    m = await memphis_connect(broker)
    try:
        batch = await m.fetch_messages(st, "after", batch_size=50)
        assert len(batch) == 50
    finally:
        await m.close()


async def test_control_plane_answers_after_losing_any_node(
    cluster: LocalBroker, name: Callable[[str], str]
) -> None:
    """Done when: the control plane answers station/producer/consumer requests again within
    10 s of losing any one node (each node is killed in turn; the broker restarts it).

    The requests come from a client connected to a node that stays up, so this measures the
    control plane (its connection moving to a surviving node, leader elections of the metadata
    bucket and the JetStream meta group), not the client's own reconnect. A request in flight
    to the dying node at the moment of the kill is lost and waits for the client's request
    timeout (20 s, then memphis-py's ``timeout_retries``); to see when the control plane answers
    again, each attempt here is bounded to 2 s and repeated."""
    figures: list[dict[str, float]] = []

    async def until_answered(m: memphis_fast.Memphis, st: str, replicas: int, since: float) -> float:
        errors: list[str] = []
        while True:
            try:
                await asyncio.wait_for(m.station(st, replicas=replicas, timeout_retries=0), 2)
                await asyncio.wait_for(m.producer(st, "p", timeout_retries=0), 2)
                await asyncio.wait_for(m.consumer(st, "c", timeout_retries=0), 2)
                return round(time.monotonic() - since, 3)
            except (TimeoutError, memphis_fast.MemphisError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                assert time.monotonic() - since < 30, errors
                await asyncio.sleep(0.1)

    for index in range(3):
        cluster.wait_healthy(90)
        survivor = cluster.nodes()[(index + 1) % 3]
        m = await memphis_connect(cluster, host=f"127.0.0.1:{survivor['port']}", port=int(survivor["port"]))
        try:
            pid = cluster.kill_node(index)
            killed_at = time.monotonic()
            # replicas=1 needs no placement on the lost node; replicas=3 on a 3-node cluster
            # needs all three nodes, so it waits for the broker to restart the killed one.
            r1 = await until_answered(m, name(f"any{index}r1"), 1, killed_at)
            r3 = await until_answered(m, name(f"any{index}r3"), 3, killed_at)
            figures.append({"killed": index, "replicas1_s": r1, "replicas3_s": r3})
        finally:
            await m.close()
        await asyncio.to_thread(cluster.wait_node_restarted, index, pid, 90.0)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "control_plane_any_node.json").write_text(
        json.dumps({"test": "control_plane_any_node", "answered_again_s": figures}, indent=2) + "\n"
    )
    # The control plane itself: answering again within 10 s (the criterion). A
    # replicas=3 station on 3 nodes also needs the killed node back (restarted after 1 s, then
    # caught up), so it gets the restart on top; both figures are recorded.
    assert all(f["replicas1_s"] <= 10.0 for f in figures), figures
    assert all(f["replicas3_s"] <= 20.0 for f in figures), figures


def test_cli_cluster_banner(tmp_path: Path) -> None:
    """``memphis-fast broker --cluster 3``: the banner prints every node's address."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memphis_fast.broker", "--cluster", "3", "--port", "-1", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        text = "".join(lines)
        assert "a 3-node JetStream cluster" in text, text
        ports = re.findall(r"memphis-fast-\d: 127\.0\.0\.1:(\d+)", text)
        assert len(set(ports)) == 3, text
        assert f'host="{",".join(f"127.0.0.1:{p}" for p in ports)}"' in text
        assert re.search(r"store limits per node: memory \d+ MiB, file \d+ MiB", text), text
        info = json.loads((tmp_path / "broker.json").read_text())
        assert [n["port"] for n in info["nodes"]] == [int(p) for p in ports]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
    assert not (tmp_path / "broker.json").exists()


def test_readme_quickstart_on_a_cluster(tmp_path: Path) -> None:
    """The README's quickstart, unchanged except ``LocalBroker()`` -> ``LocalBroker(cluster=3)``
    (its ``connect_kwargs()`` then holds the server list)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quickstart") :]
    code = section[section.index("```python") + len("```python") : section.index("```", section.index("```python") + 9)]
    assert "LocalBroker()" in code
    script = tmp_path / "quickstart.py"
    script.write_text(code.replace("LocalBroker()", "LocalBroker(cluster=3)"))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=150, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # What the README says it prints (the ```text block after the script), on a cluster too.
    rest = section[section.index("```", section.index("```python") + 9) + 3 :]
    expected = rest[rest.index("```text") + len("```text") : rest.index("```", rest.index("```text") + 7)]
    assert result.stdout.strip() == expected.strip(), result.stdout


@pytest.mark.skipif(not os.environ.get("MEMPHIS_FAST_FULL"), reason="5 nodes: MEMPHIS_FAST_FULL=1 only")
async def test_five_nodes_take_five_replicas(
    cluster_factory: Callable[..., LocalBroker], name: Callable[[str], str]
) -> None:
    broker = cluster_factory(5)
    nc = await nats.connect(**broker.nats_kwargs(), error_cb=quiet)
    m = await memphis_connect(broker)
    try:
        for stream in (f"KV_{BUCKET}", ADVISORY_STREAM):
            assert (await js(nc, f"STREAM.INFO.{stream}"))["config"]["num_replicas"] == 3  # min(3, 5)
        st = name("r5")
        await m.station(st, replicas=5, timeout_retries=0)
        si = await js(nc, f"STREAM.INFO.{subjects.stream_name(st, 1)}")
        assert si["config"]["num_replicas"] == 5 and len(si["cluster"]["replicas"]) == 4, si
    finally:
        await m.close()
        await nc.close()


async def test_memory_cluster(cluster_factory: Callable[..., LocalBroker], name: Callable[[str], str]) -> None:
    """``--cluster 3 --memory``: the broker's own streams are replicated memory streams."""
    broker = cluster_factory(3, memory=True)
    nc = await nats.connect(**broker.nats_kwargs(), error_cb=quiet)
    m = await memphis_connect(broker)
    try:
        kv = await js(nc, f"STREAM.INFO.KV_{BUCKET}")
        assert kv["config"]["storage"] == "memory" and kv["config"]["num_replicas"] == 3, kv
        st = name("mem")
        await m.station(st, replicas=3, storage_type=memphis_fast.Storage.MEMORY, timeout_retries=0)
        p = await m.producer(st, "p", timeout_retries=0)
        await p.produce(b"x", msg_id="one")
        si = await js(nc, f"STREAM.INFO.{subjects.stream_name(st, 1)}")
        assert si["state"]["messages"] == 1 and si["config"]["num_replicas"] == 3, si
    finally:
        await m.close()
        await nc.close()
    data_dir = Path(broker.info["data_dir"])
    broker.cleanup()
    assert not data_dir.exists()
