"""Cross-client tests: memphis-py 1.3.1 and memphis_fast on one local broker.

Messages produced by either client are consumed by both, with identical payloads, user
headers, partition for the same key (checked against murmur3 computed here with ``mmh3``),
round-robin order and sequence numbers. Clients in one consumer group share its messages.

memphis-py runs with host ``127.0.0.1`` and ``timeout_retries=0``, and never fetches from a
partition that has nothing left (its fetch would wait 5 s)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import memphis as mpy
import mmh3
import pytest
from support import shutdown_memphis_py

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]

LIBS = {"memphis-py": mpy, "memphis_fast": mf}
KEYS = ["", "a", "key", "user-42", "2ndPartition", "hello", "orders/eu", "\u00e9t\u00e9"]
PARTITIONS = [1, 2, 3]


async def _shutdown(conn: Any) -> None:
    if isinstance(conn, mf.Memphis):
        await conn.close()
    else:
        await shutdown_memphis_py(conn)


@pytest.fixture
async def clients(broker: LocalBroker) -> AsyncIterator[dict[str, Any]]:
    """One connected client of each library."""
    opened: dict[str, Any] = {}
    for name, lib in LIBS.items():
        conn = lib.Memphis()
        await conn.connect(**broker.connect_kwargs())
        opened[name] = conn
    yield opened
    for conn in opened.values():
        await _shutdown(conn)


def _kw(conn: Any) -> dict[str, Any]:
    return {} if isinstance(conn, mf.Memphis) else {"timeout_retries": 0}


def _lib(conn: Any) -> Any:
    return mf if isinstance(conn, mf.Memphis) else mpy


def expected_partition(key: str) -> int:
    """docs/protocol.md §7.5: murmur3 x86 32-bit, seed 31, unsigned, modulo the partition count."""
    return PARTITIONS[mmh3.hash(key, 31, signed=False) % len(PARTITIONS)]


async def fetch_partition(consumer: Any, partition: int, n: int) -> list[Any]:
    """Exactly ``n`` messages of one partition (never a fetch on an emptied partition)."""
    got: list[Any] = []
    for _ in range(20):
        if len(got) >= n:
            break
        for msg in await consumer.fetch(batch_size=n - len(got), consumer_partition_number=partition):
            got.append(msg)
            await msg.ack()
    assert len(got) == n
    return got


def view(msg: Any) -> tuple[bytes, dict[str, str], int, int]:
    """What a consumer sees of a message: payload, user headers, partition, sequence."""
    headers = {k: v for k, v in (msg.get_headers() or {}).items() if not k.startswith("$memphis")}
    return bytes(msg.get_data()), headers, msg.partition, msg.get_sequence_number()


@pytest.mark.parametrize("producer_lib", list(LIBS))
async def test_keyed_messages_look_the_same_to_both_clients(
    producer_lib: str, clients: dict[str, Any], uid: Any
) -> None:
    name = uid(f"cross-{producer_lib.replace('_', '-')}")
    conn = clients[producer_lib]
    await conn.station(name, partitions_number=len(PARTITIONS), **_kw(conn))
    producer = await conn.producer(name, "p", **_kw(conn))
    sent: list[tuple[bytes, dict[str, str], int]] = []
    for i, key in enumerate(KEYS * 2):
        payload = f"message {i} for {key!r}".encode()
        headers = _lib(conn).Headers()
        headers.add("trace", f"t-{i}")
        headers.add("key", key.encode("unicode_escape").decode())
        await producer.produce(bytearray(payload), headers=headers, producer_partition_key=key)
        assert producer.get_partition_from_key(key) == expected_partition(key)
        sent.append(
            (
                payload,
                {"trace": f"t-{i}", "key": key.encode("unicode_escape").decode()},
                expected_partition(key),
            )
        )

    expected: list[tuple[bytes, dict[str, str], int, int]] = []
    for p in PARTITIONS:
        in_p = [s for s in sent if s[2] == p]
        expected += [(data, hdrs, p, seq) for seq, (data, hdrs, _) in enumerate(in_p, start=1)]

    seen: dict[str, list[tuple[bytes, dict[str, str], int, int]]] = {}
    for consumer_lib, cconn in clients.items():
        consumer = await cconn.consumer(name, f"c-{consumer_lib.replace('_', '-')}", **_kw(cconn))
        got: list[Any] = []
        for p in PARTITIONS:
            got += await fetch_partition(consumer, p, sum(1 for s in sent if s[2] == p))
        seen[consumer_lib] = [view(m) for m in got]
        # The producer's own headers arrive too.
        assert {m.get_headers()["$memphis_producedBy"] for m in got} == {"p"}
        assert {m.get_headers()["$memphis_connectionId"] for m in got} == {conn.connection_id}
    assert seen["memphis_fast"] == expected
    assert seen["memphis-py"] == expected


@pytest.mark.parametrize("producer_lib", list(LIBS))
async def test_round_robin_and_partition_number(producer_lib: str, clients: dict[str, Any], uid: Any) -> None:
    """Without a key both clients go round-robin from the first partition, one step per
    message per producer; a partition number is honoured as given."""
    name = uid("rr")
    conn = clients[producer_lib]
    await conn.station(name, partitions_number=len(PARTITIONS), **_kw(conn))
    producer = await conn.producer(name, "p", **_kw(conn))
    for i in range(5):
        await producer.produce(bytearray(b"rr-%d" % i))
    await producer.produce(bytearray(b"to-2"), producer_partition_number=2)
    layout = {1: [b"rr-0", b"rr-3"], 2: [b"rr-1", b"rr-4", b"to-2"], 3: [b"rr-2"]}
    for consumer_lib, cconn in clients.items():
        consumer = await cconn.consumer(name, f"c-{consumer_lib.replace('_', '-')}", **_kw(cconn))
        for p, payloads in layout.items():
            got = await fetch_partition(consumer, p, len(payloads))
            assert [bytes(m.get_data()) for m in got] == payloads
            assert [m.get_sequence_number() for m in got] == list(range(1, len(payloads) + 1))


@pytest.mark.parametrize("producer_lib", list(LIBS))
async def test_text_and_json_payloads(producer_lib: str, clients: dict[str, Any], uid: Any) -> None:
    """``str`` is raw UTF-8 in both clients; a ``dict`` is JSON in both (memphis_fast writes it
    compactly, memphis-py with spaces: the same JSON, not the same bytes)."""
    name = uid("text")
    conn = clients[producer_lib]
    producer = await conn.producer(name, "p", **_kw(conn))
    await producer.produce("h\u00e9llo \u4e16\u754c")
    await producer.produce({"id": 7, "tags": ["a", "b"], "nested": {"x": None}})
    for consumer_lib, cconn in clients.items():
        consumer = await cconn.consumer(name, f"c-{consumer_lib.replace('_', '-')}", **_kw(cconn))
        text, obj = await fetch_partition(consumer, 1, 2)
        assert bytes(text.get_data()) == "h\u00e9llo \u4e16\u754c".encode()
        assert json.loads(bytes(obj.get_data())) == {"id": 7, "tags": ["a", "b"], "nested": {"x": None}}


async def test_one_consumer_group_shared_by_both_clients(clients: dict[str, Any], uid: Any) -> None:
    """A memphis-py and a memphis_fast consumer in one group split its messages: each message
    goes to exactly one of them."""
    name = uid("shared")
    fast, py = clients["memphis_fast"], clients["memphis-py"]
    producer = await fast.producer(name, "p")
    for i in range(20):
        await producer.produce(b"s-%d" % i, nonblocking=True)
    await producer.flush()
    fast_c = await fast.consumer(name, "fast", consumer_group="shared")
    py_c = await py.consumer(name, "py", consumer_group="shared", timeout_retries=0)
    got: list[bytes] = []
    for consumer in (fast_c, py_c, fast_c, py_c):
        got += [bytes(m.get_data()) for m in await fetch_partition(consumer, 1, 5)]
    assert got == [b"s-%d" % i for i in range(20)]


async def test_msg_id_from_both_clients(clients: dict[str, Any], uid: Any) -> None:
    """Both clients send ``msg-id``; memphis_fast also sends ``Nats-Msg-Id`` (docs/protocol.md §7.4), which
    is what de-duplicates on a stock-JetStream broker such as the local one."""
    name = uid("msgid")
    fast, py = clients["memphis_fast"], clients["memphis-py"]
    await fast.station(name)
    fp = await fast.producer(name, "fp")
    pp = await py.producer(name, "pp", timeout_retries=0)
    await pp.produce(bytearray(b"py"), msg_id="same")
    await fp.produce(b"fast", msg_id="same")
    await fp.produce(b"fast again", msg_id="same")
    consumer = await fast.consumer(name, "c")
    a, b = await fetch_partition(consumer, 1, 2)
    assert (a.data, a.get_headers()["msg-id"], "Nats-Msg-Id" in a.get_headers()) == (b"py", "same", False)
    assert (b.data, b.get_headers()["msg-id"], b.get_headers()["Nats-Msg-Id"]) == (b"fast", "same", "same")
    assert await consumer.fetch(batch_size=1) == []  # "fast again" was a duplicate
