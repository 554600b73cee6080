"""What a publish's ack wait covers, against real nats-servers: a message that never reached a
live connection before its ack wait ran out is "not sent" and is never sent afterwards; on a
clustered server a publish answered "no responders" (a stream leader being elected) is sent
again until it is stored or its ack wait runs out."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from typing import Any

import pytest
from wire_helpers import Connect, Events, create_stream, ms, stream_info

from memphis_fast._connection import OutcomeKind, OutcomeReason
from memphis_fast._server import NatsServer
from memphis_fast.exceptions import MemphisError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_expired_while_disconnected_is_not_sent_and_never_sent(
    nats_server: NatsServer, connect: Connect
) -> None:
    conn = await connect(nats_server)
    await create_stream(conn, "orders", ["orders.>"])
    g = conn.new_group("orders")
    await asyncio.to_thread(nats_server.kill)
    while conn.is_connected:
        await asyncio.sleep(0.01)
    # Buffered while the server is down: the ack wait (0.3 s) runs out before any reconnect.
    t0 = time.monotonic()
    r = await conn.publish_awaited("orders.a", b"order-42", g, 0, ms(0.3), None, None, "order-42")
    waited = time.monotonic() - t0
    assert (r.kind, r.reason) == (OutcomeKind.NOT_SENT, OutcomeReason.EXPIRED_BEFORE_SENDING), r
    assert r.kind == "not_sent" and not r.stored and r.msg_id == "order-42"
    assert 0.25 <= waited < 2.0, waited
    # A nonblocking one too: reported once to the group's handler, as not sent.
    failures: list[Any] = []
    conn.set_failure_handler(g, failures.append)
    assert conn.publish_windowed("orders.a", b"nb", g, 1, ms(0.2), None, None, None, 0, 0)
    await asyncio.wait_for(conn.wait_group_drained(g, None), 5)
    assert [(f.index, f.kind, f.reason) for f in failures] == [
        (1, OutcomeKind.NOT_SENT, OutcomeReason.EXPIRED_BEFORE_SENDING)
    ]
    # A message published after them, with a long ack wait, is delivered after the restart.
    later = asyncio.ensure_future(conn.publish_awaited("orders.a", b"later", g, 2, ms(30)))
    await asyncio.to_thread(nats_server.restart)
    stored = await asyncio.wait_for(later, 20)
    assert stored.stored and stored.sequence == 1, stored
    await conn.flush()
    info = await stream_info(conn, "orders")
    assert info["state"]["messages"] == 1, "the expired messages were never sent"


async def test_not_sent_while_transport_is_backed_up_is_taken_back(
    nats_server: NatsServer, connect: Connect
) -> None:
    """A connected transport that is paused keeps frames in the core; their ack wait running
    out there makes them "not sent", and they are not written when the transport resumes."""
    conn = await connect(nats_server)
    await create_stream(conn, "held", ["held.>"])
    g = conn.new_group("held")
    protocol = conn.protocol
    assert protocol is not None
    protocol.pause_writing()
    fut = conn.publish_awaited("held.a", b"held", g, 0, ms(0.2))
    r = await asyncio.wait_for(fut, 5)
    assert (r.kind, r.reason) == (OutcomeKind.NOT_SENT, OutcomeReason.EXPIRED_BEFORE_SENDING)
    protocol.resume_writing()
    ok = await conn.publish_awaited("held.a", b"after", g, 1, ms(5))
    assert ok.stored and ok.sequence == 1
    info = await stream_info(conn, "held")
    assert info["state"]["messages"] == 1


@pytest.fixture
async def cluster(nats_server_factory: Any, connect: Connect) -> list[NatsServer]:
    """A three-node JetStream cluster on loopback (routes between all), once it has a
    JetStream meta leader. Its INFO carries ``cluster``."""
    ports = [_free_port() for _ in range(3)]
    routes = ", ".join(f'"nats://127.0.0.1:{p}"' for p in ports)
    nodes: list[NatsServer] = []
    for i, p in enumerate(ports):
        cfg = (
            f"server_name: n{i}\nlame_duck_duration: 30s\nlame_duck_grace_period: 10s\n"
            f'cluster {{ name: c1, listen: "127.0.0.1:{p}", routes: [{routes}], no_advertise: true }}'
        )
        nodes.append(nats_server_factory(cfg))
    probe = await connect(nodes[0])
    async with asyncio.timeout(30):
        while True:  # wait for the meta leader: account info answers without an error
            try:
                reply = await probe.request("$JS.API.INFO", b"", 1)
            except MemphisError:  # no answer (yet) while the cluster forms
                await asyncio.sleep(0.1)
                continue
            if "error" not in json.loads(reply.data):
                break
            await asyncio.sleep(0.1)
    return nodes


@pytest.fixture
def clustered_server(cluster: list[NatsServer]) -> NatsServer:
    return cluster[0]


async def test_no_responders_is_retried_on_a_clustered_server(
    clustered_server: NatsServer, connect: Connect
) -> None:
    conn = await connect(clustered_server)
    assert conn.server_info.get("cluster") == "c1"
    assert conn.core.retry_unavailable
    g = conn.new_group("late")
    # No stream listens yet: the first tries are answered "no responders"; the stream appears
    # 0.3 s later and the same message (one frame, one reply inbox) is stored, once.
    fut = conn.publish_awaited("late.a", b"first", g, 0, ms(5), None, None, "m-1")
    nb: list[Any] = []
    conn.set_failure_handler(g, nb.append)
    assert conn.publish_windowed("late.a", b"second", g, 1, ms(5), None, None, None, 0, 0)
    await asyncio.sleep(0.3)
    assert not fut.done(), "retried, not reported"
    await create_stream(conn, "late", ["late.>"], replicas=3)
    r = await asyncio.wait_for(fut, 10)
    assert r.stored and r.reason == OutcomeReason.NONE, r
    await asyncio.wait_for(conn.wait_group_drained(g, None), 10)
    assert nb == []
    info = await stream_info(conn, "late")
    assert info["state"]["messages"] == 2
    assert conn.core.group_stats(g)["retried"] >= 2
    # A stream that never appears: reported once the ack wait runs out, with what happened.
    t0 = time.monotonic()
    gone = await conn.publish_awaited("nowhere.a", b"x", g, 2, ms(0.6))
    took = time.monotonic() - t0
    assert (gone.kind, gone.reason, gone.code) == (OutcomeKind.NOT_STORED, OutcomeReason.NO_RESPONDERS, 503)
    assert gone.error is not None and gone.error.startswith("no stream leader answered within the ack wait")
    assert 0.3 <= took < 3.0, took


async def test_insufficient_resources_is_not_retried(clustered_server: NatsServer, connect: Connect) -> None:
    """A full store (503 with err_code 10047) is final and reported with the server's reason."""
    conn = await connect(clustered_server)
    await create_stream(conn, "tiny", ["tiny.>"], storage="memory", max_bytes=200, discard="new", replicas=3)
    g = conn.new_group("tiny")
    results = [await conn.publish_awaited("tiny.a", b"x" * 100, g, i, ms(5)) for i in range(3)]
    refused = [r for r in results if not r.stored]
    assert refused, results
    for r in refused:
        assert r.kind == OutcomeKind.NOT_STORED and r.reason == OutcomeReason.JETSTREAM_ERROR, r
        assert r.code != 0 and r.err_code != 0
        assert r.error is not None and "no stream leader" not in r.error
    assert json.dumps(results[0].stored)


async def test_lame_duck_moves_the_client_before_the_server_goes_away(
    cluster: list[NatsServer], connect: Connect
) -> None:
    """A node entering lame-duck mode (SIGUSR2) tells its clients in INFO; the client lets its
    in-flight publishes finish there and moves to another node at once, long before the
    node's grace period (10 s here) would have closed it; nothing is lost. (The node chosen
    is not the stream's leader: a leader in lame-duck mode keeps its leadership until it
    exits, which is the broker's business, not the client's.)"""
    setup = await connect(*cluster)
    await create_stream(setup, "ldm", ["ldm.>"], replicas=3)
    leader = (await stream_info(setup, "ldm"))["cluster"]["leader"]
    node = next(n for i, n in enumerate(cluster) if f"n{i}" != leader)
    others = [n for n in cluster if n is not node]
    events = Events()
    conn = await connect(node, *others, on_event=events)
    assert conn.connected_server is not None and conn.connected_server.port == node.port
    g = conn.new_group("ldm")
    results = [await conn.publish_awaited("ldm.a", f"{i}".encode(), g, i, ms(15)) for i in range(10)]
    t0 = time.monotonic()
    node.signal(signal.SIGUSR2)
    await events.wait("lame_duck", timeout=5)
    # Keep producing while the client moves.
    more = [
        conn.publish_awaited("ldm.a", f"{i}".encode(), g, i, ms(15), None, None, f"id-{i}")
        for i in range(10, 30)
    ]
    await events.wait("reconnected", timeout=8)
    moved_after = time.monotonic() - t0
    assert moved_after < 8, moved_after
    assert conn.connected_server is not None and conn.connected_server.port != node.port
    results += [await asyncio.wait_for(f, 20) for f in more]
    assert all(r.stored for r in results), [r for r in results if not r.stored]
    info = await stream_info(conn, "ldm")
    assert info["state"]["messages"] == 30
    assert events.count("lame_duck") == 1, events.items
