"""Issue 11, done-when: every public method, given an argument of a wrong type or out of range,
raises a ``MemphisError`` subclass before anything is sent, and nothing hangs.

The table walks the public API of ``Memphis``, ``Station``, ``Producer``, ``Consumer``,
``Message``, ``Headers`` and ``memphis_fast.connect``: each row replaces ONE argument of a valid
call by a bad value. Each call runs under ``asyncio.timeout``; "nothing sent" is checked on the
connection's own byte counter (``bytes_out`` and ``pending_bytes`` unchanged after the event
loop had the chance to write) and, at the end, on the message counts of the stations' streams
(read with nats-py)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from support import stream_info

import memphis_fast as mf
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(120)]

TYPE = mf.MemphisArgumentTypeError  # also a TypeError
RANGE = mf.MemphisArgumentError  # also a ValueError
ERR = mf.MemphisError  # another MemphisError subclass is fine (schema, header, ...)


@dataclass
class Env:
    m: mf.Memphis
    station: Any
    producer: Any
    multi: Any
    consumer: Any
    msg: Any
    one: str  # a 1-partition station
    two: str  # a 2-partition station
    producer2: Any
    consumer2: Any


@pytest.fixture(scope="module")
def names() -> tuple[str, str, str]:
    import secrets

    tag = secrets.token_hex(3)
    return f"args-one-{tag}", f"args-two-{tag}", f"args-msg-{tag}"


@pytest.fixture
async def env(broker: LocalBroker, names: tuple[str, str, str]) -> AsyncIterator[Env]:
    one, two, msgs = names
    m = mf.Memphis()
    await m.connect(**broker.connect_kwargs(), ping_interval_ms=600_000)
    try:
        station = await m.station(one)
        await m.station(two, partitions_number=2)
        producer = await m.producer(one, "p")
        producer2 = await m.producer(two, "p")
        multi = await m.producer([one, two], "mp")
        consumer = await m.consumer(one, "c")
        consumer2 = await m.consumer(two, "c")
        # One message to hold (from its own station, so the checked ones stay empty).
        if not await m.fetch_messages(msgs, "peek", batch_max_time_to_wait_ms=100):
            await (await m.producer(msgs, "p")).produce(b"hold me")
        mc = await m.consumer(msgs, "holder", batch_max_time_to_wait_ms=1000)
        (msg,) = await mc.fetch(1)
        for c in m.consumers_map.values():  # no liveness pings during the test
            if c.t_ping is not None:
                c.t_ping.cancel()
        yield Env(m, station, producer, multi, consumer, msg, one, two, producer2, consumer2)
    finally:
        await m.close()


def _wrong_station_names() -> list[tuple[Any, type[BaseException]]]:
    return [(123, TYPE), (None, TYPE), ("", RANGE), ("sp ace", RANGE), ("-lead", RANGE), ("x" * 129, RANGE)]


INT_NEG = [("x", TYPE), (1.5, TYPE), (True, TYPE), (None, TYPE), (-5, RANGE)]
BOOL = [("yes", TYPE), (1, TYPE), (None, TYPE)]
CALLBACK = [(42, TYPE), ("cb", TYPE)]
RETRIES = [("x", TYPE), (-1, RANGE)]
SECONDS = [("x", TYPE), (-1, RANGE), (0, RANGE), (float("nan"), RANGE), (None, TYPE)]
PART_KEY = [(123, TYPE), (b"k", TYPE)]
PART_NUM = [("1", TYPE), (1.0, TYPE), (-7, RANGE)]
BATCH = [("10", TYPE), (0, RANGE), (5001, RANGE), (-1, RANGE)]


def _rows(env: Env) -> list[tuple[str, Callable[..., Any], dict[str, Any], str, list[tuple[Any, Any]]]]:
    """(label, method, valid kwargs, argument, [(bad value, expected class)])."""
    m, p, c = env.m, env.producer, env.consumer
    station_kw = {"name": env.one}
    producer_kw = {"station_name": env.one, "producer_name": "p-new"}
    consumer_kw = {"station_name": env.one, "consumer_name": "c-new"}
    produce_kw = {"message": b"x"}
    m_produce_kw = {"station_name": env.one, "producer_name": "p", "message": b"x"}
    fetch_kw = {"station_name": env.one, "consumer_name": "c"}
    rows: list[tuple[str, Callable[..., Any], dict[str, Any], str, list[tuple[Any, Any]]]] = [
        # -- Memphis.station
        *[
            ("station", m.station, station_kw, arg, bad)
            for arg, bad in [
                ("name", _wrong_station_names()),
                ("retention_type", [("forever", RANGE), (7, RANGE)]),
                ("retention_value", INT_NEG),
                ("storage_type", [("tape", RANGE), (None, RANGE)]),
                ("replicas", [*INT_NEG, (0, RANGE)]),
                ("idempotency_window_ms", INT_NEG),
                ("schema_name", [(5, TYPE)]),
                ("send_poison_msg_to_dls", BOOL),
                ("send_schema_failed_msg_to_dls", BOOL),
                ("tiered_storage_enabled", BOOL),
                ("partitions_number", INT_NEG),
                ("dls_station", [(5, TYPE), ("sp ace", RANGE)]),
                ("timeout_retries", RETRIES),
            ]
        ],
        # -- Memphis.producer
        *[
            ("producer", m.producer, producer_kw, arg, bad)
            for arg, bad in [
                ("station_name", [*_wrong_station_names(), ([], RANGE), ([env.one, 5], TYPE)]),
                ("producer_name", [(5, TYPE), ("", RANGE), ("a b", RANGE)]),
                ("generate_random_suffix", BOOL),
                ("timeout_retries", RETRIES),
                ("max_inflight", [*INT_NEG, (0, RANGE)]),
                ("max_inflight_bytes", [*INT_NEG, (0, RANGE)]),
                ("failure_callback", CALLBACK),
                ("auto_msg_id", BOOL),
                ("delivery_callback", CALLBACK),
            ]
        ],
        # -- Memphis.consumer
        *[
            ("consumer", m.consumer, consumer_kw, arg, bad)
            for arg, bad in [
                ("station_name", _wrong_station_names()),
                ("consumer_name", [(5, TYPE), ("", RANGE), ("a b", RANGE)]),
                ("consumer_group", [(5, TYPE), ("a b", RANGE)]),
                ("pull_interval_ms", INT_NEG),
                ("batch_size", BATCH),
                ("batch_max_time_to_wait_ms", INT_NEG),
                ("max_ack_time_ms", [*INT_NEG, (0, RANGE)]),
                ("max_msg_deliveries", [*INT_NEG, (0, RANGE)]),
                ("generate_random_suffix", BOOL),
                ("start_consume_from_sequence", [("x", TYPE), (0, RANGE), (-1, RANGE)]),
                ("last_messages", [("x", TYPE), (-2, RANGE)]),
                ("timeout_retries", RETRIES),
                ("error_callback", CALLBACK),
                ("max_bytes_per_pull", [*INT_NEG, (0, RANGE)]),
            ]
        ],
        # -- Memphis.produce (nothing may be created either)
        *[
            ("Memphis.produce", m.produce, m_produce_kw, arg, bad)
            for arg, bad in [
                ("station_name", [(5, TYPE), ("sp ace", RANGE)]),
                ("producer_name", [(5, TYPE), ("a b", RANGE)]),
                ("message", [(None, TYPE), (object(), ERR)]),
                ("generate_random_suffix", BOOL),
                ("ack_wait_sec", SECONDS),
                ("headers", [("h", ERR), ({"k": None}, ERR), ({"k": 1}, ERR), ({"$memphis_x": "1"}, ERR)]),
                ("async_produce", [("yes", TYPE)]),
                ("msg_id", [(123, TYPE), (b"id", TYPE)]),
                ("producer_partition_key", PART_KEY),
                ("producer_partition_number", [*PART_NUM, (99, ERR)]),
                ("nonblocking", BOOL),
            ]
        ],
        # -- Memphis.fetch_messages
        *[
            ("fetch_messages", m.fetch_messages, fetch_kw, arg, bad)
            for arg, bad in [
                ("station_name", _wrong_station_names()),
                ("consumer_name", [(5, TYPE), ("a b", RANGE)]),
                ("consumer_group", [(5, TYPE)]),
                ("batch_size", BATCH),
                ("batch_max_time_to_wait_ms", INT_NEG),
                ("max_ack_time_ms", INT_NEG),
                ("max_msg_deliveries", INT_NEG),
                ("generate_random_suffix", BOOL),
                ("start_consume_from_sequence", [("x", TYPE), (0, RANGE)]),
                ("last_messages", [("x", TYPE), (-2, RANGE)]),
                ("consumer_partition_key", PART_KEY),
                ("consumer_partition_number", PART_NUM),
                ("prefetch", BOOL),
            ]
        ],
        # -- Memphis schemas and helpers
        *[
            ("create_schema", m.create_schema, {"schema_name": "s", "schema_type": "json", "schema_path": "/nonexistent"}, arg, bad)
            for arg, bad in [
                ("schema_name", [(5, ERR), ("", ERR), ("a b", ERR)]),
                ("schema_type", [(5, ERR), ("xml", ERR)]),
                ("schema_path", [(5, ERR), (None, ERR)]),
                ("timeout_retries", RETRIES),
            ]
        ],
        *[
            ("enforce_schema", m.enforce_schema, {"name": "s", "station_name": env.one}, arg, bad)
            for arg, bad in [
                ("name", [(5, TYPE), ("", RANGE)]),
                ("station_name", [(5, TYPE), ("", RANGE), ("sp ace", RANGE)]),
                ("timeout_retries", RETRIES),
            ]
        ],
        *[
            ("attach_schema", m.attach_schema, {"name": "s", "station_name": env.one}, arg, bad)
            for arg, bad in [("name", [(5, TYPE)]), ("station_name", [(5, TYPE), ("sp ace", RANGE)])]
        ],
        *[
            ("detach_schema", m.detach_schema, {"station_name": env.one}, arg, bad)
            for arg, bad in [("station_name", [(5, TYPE), ("", RANGE), ("sp ace", RANGE)]), ("timeout_retries", RETRIES)]
        ],
        ("schema_name_validation", m.schema_name_validation, {"schema_name": "s"}, "schema_name", [(5, ERR), ("", ERR)]),
        ("unset_cached_producer_station", m.unset_cached_producer_station, {"station_name": env.one}, "station_name", [(5, TYPE)]),
        ("unset_cached_consumer_station", m.unset_cached_consumer_station, {"station_name": env.one}, "station_name", [(5, TYPE)]),
        # -- Station
        ("Station.destroy", env.station.destroy, {}, "timeout_retries", RETRIES),
        ("Station.create_producer", env.station.create_producer, {"producer_name": "p-new"}, "producer_name", [(5, TYPE), ("a b", RANGE)]),
        ("Station.create_producer", env.station.create_producer, {"producer_name": "p-new"}, "max_inflight", [(0, RANGE)]),
        ("Station.create_consumer", env.station.create_consumer, {"consumer_name": "c-new"}, "consumer_name", [(5, TYPE), ("a b", RANGE)]),
        ("Station.create_consumer", env.station.create_consumer, {"consumer_name": "c-new"}, "batch_size", BATCH),
        ("Station.validate_msg", env.station.validate_msg, {"message": b"x"}, "message", [(None, ERR), (object(), ERR)]),
        # -- Producer
        *[
            (f"{label}.produce", prod.produce, produce_kw, arg, bad)
            for label, prod in (("Producer", p), ("multi-station Producer", env.multi))
            for arg, bad in [
                ("message", [(None, TYPE), (object(), ERR), (3.5, ERR)]),
                ("ack_wait_sec", SECONDS),
                ("headers", [("h", ERR), ({"k": None}, ERR), ({"k": 123}, ERR), ({"k": b"raw"}, ERR), ({"$memphis_x": "1"}, ERR), ({5: "v"}, ERR)]),
                ("async_produce", [("yes", TYPE), (1, TYPE)]),
                ("nonblocking", BOOL),
                ("msg_id", [(123, TYPE), (b"id", TYPE)]),
                ("concurrent_task_limit", [(-1, RANGE), (0, RANGE), ("8", TYPE), (2.5, TYPE)]),
                ("producer_partition_key", PART_KEY),
                ("producer_partition_number", PART_NUM),
            ]
        ],
        ("Producer.produce (1 partition)", p.produce, produce_kw, "producer_partition_number", [(99, ERR), (2, ERR)]),
        ("Producer.produce (1 partition)", p.produce, {**produce_kw, "producer_partition_key": "k"}, "producer_partition_number", [(1, RANGE)]),
        ("Producer.produce (2 partitions)", env.producer2.produce, produce_kw, "producer_partition_number", [(3, ERR), (99, ERR)]),
        ("Producer.produce (2 partitions)", env.producer2.produce, {**produce_kw, "producer_partition_key": "k"}, "producer_partition_number", [(2, RANGE)]),
        ("Producer.produce nonblocking", p.produce, {**produce_kw, "nonblocking": True}, "concurrent_task_limit", [(-1, RANGE), (0, RANGE)]),
        *[
            ("Producer.produce_batch", p.produce_batch, {"messages": [b"a", b"b"]}, arg, bad)
            for arg, bad in [
                ("messages", [(None, TYPE), ("abc", TYPE), (b"abc", TYPE), (5, TYPE), ([b"a", None], TYPE), ({b"a"}, TYPE)]),
                ("ack_wait_sec", SECONDS),
                ("headers", [("h", ERR), ({"k": None}, ERR), ({"$memphis_x": "1"}, ERR)]),
                ("msg_ids", [("ab", TYPE), ([1, 2], TYPE), (["a"], RANGE)]),
                ("producer_partition_key", PART_KEY),
                ("producer_partition_number", [*PART_NUM, (99, ERR)]),
            ]
        ],
        ("Producer.produce_batch", env.producer2.produce_batch, {"messages": [b"a"]}, "producer_partition_number", [(3, ERR)]),
        ("Producer.flush", p.flush, {}, "timeout", [("x", TYPE), (-1, RANGE)]),
        ("Producer.destroy", p.destroy, {}, "timeout_retries", RETRIES),
        ("Producer.get_partition_from_key", p.get_partition_from_key, {"key": "k"}, "key", [(5, TYPE), (None, TYPE)]),
        *[
            ("Producer.validate_partition_number", p.validate_partition_number, {"partition_number": 1, "station_name": env.one}, arg, bad)
            for arg, bad in [("partition_number", [("1", TYPE), (99, ERR), (0, ERR)]), ("station_name", [(5, TYPE)])]
        ],
        # -- Consumer
        *[
            ("Consumer.consume", c.consume, {"callback": _noop}, arg, bad)
            for arg, bad in [
                ("callback", [(None, TYPE), (42, TYPE)]),
                ("consumer_partition_key", PART_KEY),
                ("consumer_partition_number", [*PART_NUM, (99, ERR)]),
                ("timeout_error_on_empty", BOOL),
            ]
        ],
        ("Consumer.consume", c.consume, {"callback": _noop, "consumer_partition_key": "k"}, "consumer_partition_number", [(1, RANGE)]),
        ("Consumer.consume (2 partitions)", env.consumer2.consume, {"callback": _noop}, "consumer_partition_number", [(3, ERR)]),
        *[
            ("Consumer.fetch", c.fetch, {}, arg, bad)
            for arg, bad in [
                ("batch_size", BATCH),
                ("consumer_partition_key", PART_KEY),
                ("consumer_partition_number", [*PART_NUM, (99, ERR)]),
                ("prefetch", BOOL),
            ]
        ],
        *[
            ("Consumer.messages", c.messages, {}, arg, bad)
            for arg, bad in [
                ("batch_size", BATCH),
                ("consumer_partition_key", PART_KEY),
                ("consumer_partition_number", [*PART_NUM, (99, ERR)]),
            ]
        ],
        *[
            ("Consumer.batches", c.batches, {}, arg, bad)
            for arg, bad in [
                ("batch_size", BATCH),
                ("consumer_partition_key", PART_KEY),
                ("consumer_partition_number", [*PART_NUM, (99, ERR)]),
            ]
        ],
        ("Consumer.ack", c.ack, {"msgs": []}, "msgs", [(None, TYPE), (5, TYPE), ("abc", TYPE), ([b"m"], TYPE)]),
        ("Consumer.nack", c.nack, {"msgs": []}, "msgs", [(None, TYPE), (5, TYPE), ([object()], TYPE)]),
        ("Consumer.destroy", c.destroy, {}, "timeout_retries", RETRIES),
        ("Consumer.get_partition_from_key", c.get_partition_from_key, {"key": "k"}, "key", [(5, TYPE)]),
        *[
            ("Consumer.validate_partition_number", c.validate_partition_number, {"partition_number": 1, "station_name": env.one}, arg, bad)
            for arg, bad in [("partition_number", [("1", TYPE), (99, ERR)]), ("station_name", [(5, TYPE)])]
        ],
        *[
            ("Consumer.load_messages_to_cache", c.load_messages_to_cache, {"batch_size": 5, "partition_number": 1}, arg, bad)
            for arg, bad in [("batch_size", BATCH), ("partition_number", [("1", TYPE)])]
        ],
        # -- Message
        ("Message.delay", env.msg.delay, {"delay": 1}, "delay", [("soon", TYPE), (None, TYPE), (-1, RANGE), (float("inf"), RANGE)]),
        ("Message.dead_letter", env.msg.dead_letter, {"reason": "r"}, "reason", [(None, TYPE), (5, TYPE)]),
        # -- Headers
        ("Headers.add", mf.Headers().add, {"key": "k", "value": "v"}, "value", [(None, ERR), (123, ERR), (b"raw", ERR), (["v"], ERR)]),
        ("Headers.add", mf.Headers().add, {"key": "k", "value": "v"}, "key", [(5, ERR), ("$memphis_k", ERR), ("a:b", ERR), ("", ERR)]),
    ]
    return rows


async def _noop(msgs: Any, error: Any, context: Any) -> None:
    return None


def _sent(m: mf.Memphis) -> tuple[int, int]:
    s = m.stats()
    return s["bytes_out"], s["pending_bytes"]


def _same(before: tuple[int, int], after: tuple[int, int]) -> bool:
    """Nothing written but keepalive: a ``PING``/``PONG`` line is 6 bytes (no publish is)."""
    return after[1] == before[1] == 0 and after[0] - before[0] in (0, 6, 12)


async def _call(method: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    async with asyncio.timeout(5):
        res = method(**kwargs)
        if inspect.isawaitable(res):
            await res


async def test_every_public_method_refuses_bad_arguments_before_sending(env: Env, broker: LocalBroker) -> None:
    failures: list[str] = []
    checked = 0
    for label, method, valid, arg, bads in _rows(env):
        assert arg in inspect.signature(method).parameters or arg in (
            "max_inflight",
            "batch_size",
        ), f"{label} has no parameter {arg!r}"
        for bad, expected in bads:
            await asyncio.sleep(0.01)  # let anything earlier go out first
            before = _sent(env.m)
            kwargs = {**valid, arg: bad}
            try:
                await _call(method, kwargs)
            except TimeoutError:
                failures.append(f"{label}({arg}={bad!r}) hung")
                continue
            except mf.MemphisError as exc:
                if not isinstance(exc, expected):
                    failures.append(f"{label}({arg}={bad!r}) raised {type(exc).__name__}, expected {expected.__name__}: {exc}")
                elif expected is TYPE and not isinstance(exc, TypeError) or expected is RANGE and not isinstance(exc, ValueError):
                    failures.append(f"{label}({arg}={bad!r}): {type(exc).__name__} is not a built-in error too")
                elif "$memphis" in exc.message and arg not in ("headers", "key"):
                    failures.append(f"{label}({arg}={bad!r}) leaks an internal subject: {exc}")
                elif isinstance(exc, mf.MemphisArgumentError) and arg not in exc.message and "Batch size" not in exc.message and "partition" not in exc.message.lower() and "name" not in exc.message and "station" not in exc.message:
                    failures.append(f"{label}({arg}={bad!r}): the message does not name the argument: {exc}")
            except BaseException as exc:  # noqa: BLE001 - the point of the test
                failures.append(f"{label}({arg}={bad!r}) raised {type(exc).__name__} (not a MemphisError): {exc}")
                continue
            else:
                failures.append(f"{label}({arg}={bad!r}) was accepted")
            checked += 1
            await asyncio.sleep(0.02)
            if not _same(before, _sent(env.m)):
                failures.append(f"{label}({arg}={bad!r}) sent something: {before} -> {_sent(env.m)}")
    assert not failures, "\n".join(failures)
    assert checked > 300
    # Nothing reached the stations (read with a plain nats-py client).
    nc = await nats.connect(**broker.nats_kwargs())
    try:
        for stream in (f"{env.one}$1", f"{env.two}$1", f"{env.two}$2"):
            info = await stream_info(nc, stream)
            assert info["state"]["messages"] == 0, (stream, info["state"])
    finally:
        await nc.close()
    # The objects still work after all that.
    assert (await env.producer.produce(b"ok")).stored
    assert len(await env.consumer.fetch(1)) == 1


@pytest.mark.parametrize(
    ("arg", "bad", "expected"),
    [
        ("host", 5, TYPE),
        ("host", "", RANGE),
        ("username", None, TYPE),
        ("account_id", "1", TYPE),
        ("account_id", -1, RANGE),
        ("connection_token", 5, TYPE),
        ("password", None, TYPE),
        ("port", -1, RANGE),
        ("port", 70000, RANGE),
        ("port", "6666", TYPE),
        ("reconnect", "yes", TYPE),
        ("max_reconnect", -2, RANGE),
        ("max_reconnect", "x", TYPE),
        ("reconnect_interval_ms", -1, RANGE),
        ("timeout_ms", 0, RANGE),
        ("timeout_ms", "2000", TYPE),
        ("cert_file", 5, TYPE),
        ("key_file", 5, TYPE),
        ("ca_file", 5, TYPE),
        ("connection_event_callback", 5, TYPE),
        ("ping_interval_ms", 0, RANGE),
    ],
)
@pytest.mark.parametrize("how", ["Memphis.connect", "memphis_fast.connect"])
async def test_connect_refuses_bad_arguments(broker: LocalBroker, how: str, arg: str, bad: Any, expected: Any) -> None:
    kwargs = {**broker.connect_kwargs(), arg: bad}
    async with asyncio.timeout(5):
        with pytest.raises(expected) as info:
            if how == "Memphis.connect":
                await mf.Memphis().connect(**kwargs)
            else:
                await mf.connect(**kwargs)
    assert arg in info.value.message
    assert isinstance(info.value, TypeError if expected is TYPE else ValueError)


def test_exception_classes() -> None:
    assert issubclass(mf.MemphisArgumentError, mf.MemphisError) and issubclass(mf.MemphisArgumentError, ValueError)
    assert issubclass(mf.MemphisArgumentTypeError, mf.MemphisArgumentError)
    assert issubclass(mf.MemphisArgumentTypeError, TypeError)
