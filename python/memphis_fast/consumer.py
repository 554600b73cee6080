"""Consumers (``memphis.consumer.Consumer``).

Flow control
    Messages are pulled from the consumer group's durable JetStream consumer, one pull
    subscription per partition. Every pull carries ``expires``
    (``batch_max_time_to_wait_ms``, at least 100 ms — memphis-py ignored it and waited 5 s),
    a byte limit (``max_bytes_per_pull``) and, for pulls of 2 s or more, idle heartbeats; the
    Rust core counts deliveries against pulls in wire order, so a pull that expired, lost its
    heartbeats or died with the connection is noticed and replaced (consumers keep working
    across reconnects). While ``consume()`` runs, each partition keeps at most two pulls of
    ``batch_size`` in flight — the next batch is on its way while the callback handles the
    current one — so at most ``2 * batch_size`` messages (and ``2 * max_bytes_per_pull``
    bytes) wait per partition. Every pull asks for a whole batch (no top-up pulls of a few
    messages, each costing a round trip). Partitions are served round-robin among those that have
    messages. ``pull_interval_ms`` is slept only after pulls came back empty: a busy consumer
    is never throttled (memphis-py slept after every batch, capping it at 10 msg/s by default).

Callback concurrency
    The callback of a consumer is awaited from one task: never concurrently with itself, batch
    after batch, DLS messages included (as one-message batches, delivered once). An exception
    from the callback is logged and passed to the consumer's error handler; consumption goes on.

Held messages
    Messages waiting in the prefetch buffer, and those of a batch whose callback runs longer
    than 80% of ``max_ack_time_ms``, get an in-progress ack (``+WPI``) so the broker does not
    redeliver them behind your back. ``stop_consume()``, ``destroy()`` and ``Memphis.close()``
    nak buffered messages, so the group gets them again at once.

Empty pulls
    By default an empty pull is silent (like the Go client). ``consume(...,
    timeout_error_on_empty=True)`` restores memphis-py's habit of calling the callback with
    ``([], MemphisError("Memphis: TimeoutError"), context)`` after each empty pull.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from . import _subjects as subjects
from ._connection import ACK, IN_PROGRESS, NAK, Msg, Partitioner, PullEnd
from .exceptions import (
    MemphisArgumentError,
    MemphisArgumentTypeError,
    MemphisConnectionClosedError,
    MemphisError,
    MemphisFetchError,
    MemphisTimeoutError,
)
from .message import Message, _Ctx
from .partition_generator import check_partition_number
from .utils import check_bool, check_callable, check_int, check_str, default_error_handler

if TYPE_CHECKING:
    from ._connection import NatsConnection, PullSubscription
    from .memphis import Memphis
    from .partition_generator import PartitionGenerator
    from .station import StationState

__all__ = ["Consumer"]

log = logging.getLogger("memphis_fast")

Callback = Callable[[list[Message], MemphisError | None, Any], Awaitable[Any] | Any]

#: fetch() returns once it has at least one message and no further one arrived for this long
FETCH_IDLE_MS = 20

#: DLS messages kept for ``fetch()`` while nobody consumes (docs/protocol.md §11.1: 10 000).
DLS_BUFFER = 10_000
DEFAULT_MAX_BYTES_PER_PULL = 8 * 1024 * 1024
_IN_PROGRESS = IN_PROGRESS
_NAK = NAK
_ACK = ACK


def _nothing_pending(m: Msg) -> bool:
    """The consumer had no further message pending when ``m`` was delivered (its JetStream
    metadata's ``num_pending``; True when it has none)."""
    md = m.metadata()
    return md is None or md[6] == 0


class _Fetcher:
    """The pull subscription and prefetch buffer of one partition."""

    __slots__ = (
        "consumer",
        "conn",
        "partition",
        "stream",
        "sub",
        "chunks",
        "buffered",
        "error",
        "naking",
        "empty_until",
        "waiter",
        "want",
    )

    def __init__(self, consumer: Consumer, partition: int, stream: str) -> None:
        self.consumer = consumer
        self.conn = consumer._conn
        self.partition = partition
        self.stream = stream
        #: deque of [arrival time, list of Msg]
        self.chunks: collections.deque[list[Any]] = collections.deque()
        self.buffered = 0
        self.error: MemphisError | None = None
        self.naking = False
        #: after a pull came back empty, do not pull again before this (monotonic) time
        self.empty_until = 0.0
        #: a fetch() waiting for ``want`` buffered messages (see :meth:`wait`)
        self.waiter: asyncio.Future[bool] | None = None
        self.want = 0
        api = subjects.js_consumer_msg_next(stream, consumer._durable)
        self.sub: PullSubscription = self.conn.pull_subscription(api, self._on_msgs, self._on_end)

    def _on_msgs(self, msgs: list[Msg]) -> None:
        if self.naking:
            self.conn.ack_many(msgs, _NAK)
            return
        self.chunks.append([time.monotonic(), msgs])
        self.buffered += len(msgs)
        self.empty_until = 0.0
        if self.waiter is not None and (self.buffered >= self.want or _nothing_pending(msgs[-1])):
            # Enough for the waiting fetch, or the stream has nothing more for now (the fetch
            # then decides whether to wait for stragglers): one wake-up, not one per read.
            self._release(True)
        self.consumer._wake()

    def _on_end(self, end: PullEnd) -> None:
        if end.empty:
            self.consumer.stats["empty_pulls"] += 1
            self.empty_until = time.monotonic() + (self.consumer.pull_interval_ms or 0) / 1000
        elif end.refused:
            self.error = MemphisFetchError(f"pull on {self.stream} failed: {end.code} {end.description}")
            # Pause as after an empty pull: a gone stream would otherwise be re-pulled (and
            # reported) thousands of times a second.
            self.empty_until = time.monotonic() + max(self.consumer.pull_interval_ms or 0, 100) / 1000
        self._release(True)
        self.consumer._wake()

    def _release(self, woken: bool) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(woken)

    async def wait(self, want: int, timeout: float) -> bool:
        """Wait until ``want`` messages are buffered, a delivery says the stream has no more
        pending, or a pull ended: True; False after ``timeout`` seconds without that."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._release(False)  # (one fetch per partition waits at a time; never two)
        self.waiter, self.want = fut, want
        timer = loop.call_later(timeout, self._release, False)
        try:
            return await fut
        finally:
            timer.cancel()
            if self.waiter is fut:
                self.waiter = None

    def outstanding(self) -> tuple[int, int]:
        return self.sub.outstanding()

    def request(
        self, n: int, expires_ms: int, heartbeat: bool = True, now: bool = False, ahead_of_acks: bool = False
    ) -> None:
        c = self.consumer
        hb = min(expires_ms // 4, 5000) if heartbeat and expires_ms >= 2000 else 0
        max_bytes = max(c.max_bytes_per_pull, self.conn.max_payload + 64 * 1024)
        self.sub.pull(n, max_bytes, expires_ms, hb, now, ahead_of_acks)
        c.stats["pulls"] += 1

    def ensure(self, want: int, expires_ms: int, now: bool = False) -> None:
        """Keep ``want`` messages buffered or on their way, with at most two pulls (``now``:
        the pull is written at once, see :meth:`PullSubscription.pull`)."""
        pulls, outstanding = self.sub.outstanding()
        have = self.buffered + outstanding
        if have < want and pulls < 2:
            self.request(min(self.consumer.batch_size, want - have), expires_ms, now=now)

    def top_up(self, batch: int, expires_ms: int, flowing: bool = True) -> None:
        """The consume pipeline: keep up to two whole pulls of ``batch`` (at most the
        consumer's ``batch_size``) buffered or on their way; one pull while idle (not
        ``flowing``). A pull is asked for only when a whole one fits in the ``2 * batch``
        window, never to fill the gap a partly delivered pull left: a pull of two messages
        costs the round trip that one of ``batch`` costs, and every pull being whole keeps
        the count of pulls a function of the count of messages."""
        pulls, outstanding = self.sub.outstanding()
        if pulls >= (2 if flowing else 1):
            return
        size = min(self.consumer.batch_size, batch)
        if self.buffered + outstanding + size <= 2 * batch:
            self.request(size, expires_ms)

    def take(self, n: int) -> list[Msg]:
        out: list[Msg] = []
        chunks = self.chunks
        while chunks and len(out) < n:
            chunk = chunks[0]
            msgs = chunk[1]
            need = n - len(out)
            if len(msgs) <= need:
                chunks.popleft()
                if out:
                    out.extend(msgs)
                else:
                    out = msgs
            else:
                out.extend(msgs[:need])
                chunk[1] = msgs[need:]
        self.buffered -= len(out)
        return out

    def older_than(self, age: float) -> list[Msg]:
        """Buffered messages that arrived more than ``age`` seconds ago (their clock restarts)."""
        now = time.monotonic()
        out: list[Msg] = []
        for chunk in self.chunks:
            if now - chunk[0] < age:
                break
            out.extend(chunk[1])
            chunk[0] = now
        return out

    def nak_all(self) -> int:
        msgs = self.take(self.buffered)
        if msgs:
            self.conn.ack_many(msgs, _NAK)
        return len(msgs)

    def close(self) -> None:
        self.sub.close()
        self._release(True)


class Consumer:
    """A consumer. Created by :meth:`Memphis.consumer` (or :meth:`Station.create_consumer`)."""

    MAX_BATCH_SIZE = 5000

    def __init__(
        self,
        connection: Memphis,
        station_name: str,
        consumer_name: str,
        consumer_group: str,
        pull_interval_ms: int,
        batch_size: int,
        batch_max_time_to_wait_ms: int,
        max_ack_time_ms: int,
        max_msg_deliveries: int = 2,
        error_callback: Callable[[MemphisError], Any] | None = None,
        start_consume_from_sequence: int = 1,
        last_messages: int = -1,
        partition_generator: PartitionGenerator | None = None,
        subscriptions: dict[int, Any] | None = None,
        *,
        state: StationState | None = None,
        partitions: list[int] | None = None,
        max_bytes_per_pull: int = DEFAULT_MAX_BYTES_PER_PULL,
    ) -> None:
        self.connection = connection
        self.station_name = station_name.lower()
        self.internal_station_name = subjects.internal_name(self.station_name)
        self.inner_station_name = self.internal_station_name
        self.consumer_name = consumer_name.lower()
        self.consumer_group = (consumer_group or consumer_name).lower()
        self.pull_interval_ms = pull_interval_ms
        self.batch_size = batch_size
        self.batch_max_time_to_wait_ms = max(100, batch_max_time_to_wait_ms)
        self.max_ack_time_ms = max_ack_time_ms
        self.max_msg_deliveries = max_msg_deliveries
        self.ping_consumer_interval_ms = 30000
        self.error_callback = error_callback or default_error_handler
        self.start_consume_from_sequence = start_consume_from_sequence
        self.last_messages = last_messages
        self.max_bytes_per_pull = max_bytes_per_pull
        self.context: Any = {}
        self.dls_messages: collections.deque[Message] = collections.deque(maxlen=DLS_BUFFER)
        self.dls_callback_func: Callback | None = None
        self.t_consume: asyncio.Task[None] | None = None
        self.t_ping: asyncio.Task[None] | None = None
        self.t_dls = None
        self.cached_messages: list[Message] = []
        self.stats = {"pulls": 0, "empty_pulls": 0, "idle_sleeps": 0, "in_progress_acks": 0, "naks": 0}
        self._conn: NatsConnection = connection._require_conn()
        self._ctx = _Ctx(connection, self.consumer_group, self.internal_station_name)
        self._state = state
        self._durable = subjects.durable_name(self.consumer_group)
        self._partitions = partitions
        plist = partitions if partitions else [1]
        self.partition_generator = partition_generator
        self._rr = Partitioner(list(plist))
        self._fetchers: dict[int, _Fetcher] = {}
        for p in plist:
            stream = subjects.stream_name(self.station_name, p if partitions else 0)
            self._fetchers[p] = _Fetcher(self, p, stream)
        self.subscriptions = {p: f.stream for p, f in self._fetchers.items()}
        self._event: asyncio.Event | None = None
        self._consuming = False
        #: the running ``async for`` iteration (a token) and the messages of its batch not
        #: yet handed out (given back to the group when it stops)
        self._iter_token: object | None = None
        self._iter_rest: Iterator[Message] = iter(())
        self._empty_reported = False
        self._rr_pos = 0
        self.fetch_idle_ms = FETCH_IDLE_MS
        self._dls_queue: collections.deque[Message] = collections.deque()
        self._current: tuple[float, list[Message]] | None = None
        self._hold_timer: asyncio.TimerHandle | None = None
        self._destroyed = False
        dls_subject = subjects.dls_subject(self.station_name, self.consumer_group)
        self._dls_sid: int | None = self._conn.subscribe(dls_subject, self._on_dls, queue=dls_subject)
        self._arm_hold_timer()

    def __repr__(self) -> str:
        return f"<Consumer {self.consumer_name} group={self.consumer_group} station={self.station_name}>"

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_consume()

    # -- plumbing ----------------------------------------------------------------------------
    def _wake(self) -> None:
        ev = self._event
        if ev is not None:
            ev.set()

    def _wrap(self, msgs: list[Msg], partition: int) -> list[Message]:
        wrap = Message._wrap
        ctx = self._ctx
        return [wrap(m, ctx, partition) for m in msgs]

    def _on_dls(self, msgs: list[Msg]) -> None:
        for m in msgs:
            message = Message._wrap(m, self._ctx, 0, dls=not m.is_js)
            if self._consuming:
                self._dls_queue.append(message)
            else:
                if len(self.dls_messages) == DLS_BUFFER:
                    log.warning("DLS buffer of %s is full: dropping its oldest message", self.consumer_name)
                self.dls_messages.append(message)
        self._wake()

    def _report(self, err: BaseException) -> None:
        e = err if isinstance(err, MemphisError) else MemphisError(str(err))
        try:
            res = self.error_callback(e)
            if inspect.isawaitable(res):
                asyncio.ensure_future(res)
        except Exception:
            log.exception("consumer error handler raised")

    def _arm_hold_timer(self) -> None:
        """Check held messages every 30% of the ack wait."""
        if self._destroyed:
            return
        loop = asyncio.get_running_loop()
        period = max(self.max_ack_time_ms / 1000 * 0.3, 0.05)
        self._hold_timer = loop.call_later(period, self._hold_tick)

    def _hold_tick(self) -> None:
        self._hold_timer = None
        if self._destroyed or self._conn.is_closed:
            return
        limit = self.max_ack_time_ms / 1000 * 0.8
        try:
            for f in self._fetchers.values():
                old = f.older_than(limit)
                if old:
                    self._conn.ack_many(old, _IN_PROGRESS)
                    self.stats["in_progress_acks"] += len(old)
            cur = self._current
            if cur is not None and time.monotonic() - cur[0] >= limit:
                pending = [m._m for m in cur[1] if not m._done]
                if pending:
                    self._conn.ack_many(pending, _IN_PROGRESS)
                    self.stats["in_progress_acks"] += len(pending)
                self._current = (time.monotonic(), cur[1])
        except MemphisError as exc:
            log.debug("in-progress acks not sent: %s", exc)
        self._arm_hold_timer()

    def _partition_for(self, key: str | None, number: int) -> int | None:
        """The partition a key/number selects (None = round-robin)."""
        if key is not None and type(key) is not str:
            raise MemphisArgumentTypeError(
                f"consumer_partition_key must be a str or None, not {type(key).__name__} {key!r}"
            )
        check_int("consumer_partition_number", number)
        if number < -1:
            raise MemphisArgumentError(f"consumer_partition_number must be -1 (not given) or >= 1, not {number}")
        if number > 0 and key is not None:
            raise MemphisArgumentError("Can not use both partition number and partition key")
        parts = self._partitions
        if not parts or len(parts) == 1:
            if number > 0:
                self.validate_partition_number(number, self.internal_station_name)
            return None
        if key is not None:
            return int(self._rr.for_key(key))
        if number > 0:
            self.validate_partition_number(number, self.internal_station_name)
            return number
        return None

    def get_partition_from_key(self, key: str) -> int:
        check_str("key", key)
        parts = self._partitions or [1]
        return int(self._rr.for_key(key)) if len(parts) > 1 else parts[0]

    def validate_partition_number(self, partition_number: int, station_name: str) -> None:
        check_int("partition_number", partition_number)
        check_str("station_name", station_name)
        check_partition_number(self._partitions, partition_number, station_name)

    def _check_usable(self) -> None:
        """Raise if the connection is closed or the consumer destroyed (the connection first:
        after ``Memphis.close()`` every call raises :class:`MemphisConnectionClosedError`)."""
        if self._conn.is_closed or self.connection._closed:
            raise MemphisConnectionClosedError("the connection is closed")
        if self._destroyed:
            raise MemphisError("the consumer was destroyed")

    def _check_idle(self) -> None:
        """Refuse to start while ``consume()`` runs; end a running ``async for`` iteration (a
        loop left by ``break`` is only finalized later, by the event loop: starting again
        right away must work)."""
        if self.t_consume is not None and not self.t_consume.done():
            raise MemphisError("this consumer is already consuming; call stop_consume() first")
        left = self._end_iteration()
        if left:
            self._give_back(left)

    def _end_iteration(self) -> list[Message]:
        """End the running iteration (it stops at its next step); returns the messages it
        took and did not hand out yet."""
        if self._iter_token is None:
            return []
        self._iter_token = None
        left = [m for m in self._iter_rest if not m._done]
        self._iter_rest = iter(())
        self._current = None
        self._wake()
        return left

    # -- public API --------------------------------------------------------------------------
    def set_context(self, context: Any) -> None:
        """Set the context passed to every callback call."""
        self.context = context

    def consume(
        self,
        callback: Callback,
        consumer_partition_key: str | None = None,
        consumer_partition_number: int = -1,
        timeout_error_on_empty: bool = False,
    ) -> None:
        """Start consuming: ``await callback(messages, error, context)`` for each batch (see the
        module docs for flow control and concurrency). Returns at once; stop with
        :meth:`stop_consume` or :meth:`destroy`. Invalid arguments raise here (memphis-py
        killed its task silently, B7). ``callback`` may be an ``async`` function (as in
        memphis-py) or a plain one; a plain one returning an awaitable has it awaited."""
        check_callable("callback", callback, optional=False)
        check_bool("timeout_error_on_empty", timeout_error_on_empty)
        fixed = self._partition_for(consumer_partition_key, consumer_partition_number)
        self._check_usable()
        self._check_idle()
        self.dls_callback_func = callback
        self._start(fixed)
        self.t_consume = asyncio.get_running_loop().create_task(
            self._consume_loop(callback, fixed, timeout_error_on_empty),
            name=f"memphis-consume-{self.consumer_name}",
        )

    async def _call(self, callback: Callback, msgs: list[Message], err: MemphisError | None) -> None:
        self._current = (time.monotonic(), msgs) if msgs else None
        try:
            res = callback(msgs, err, self.context)
            if inspect.isawaitable(res):
                await res
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("consume callback of %s raised", self.consumer_name)
            self._report(exc)
        finally:
            self._current = None

    async def _next_batch(
        self, fetchers: list[_Fetcher], batch: int, timeout_error: bool, token: object | None = None
    ) -> list[Message] | None:
        """The next batch to hand out: one DLS message alone, or up to ``batch_size``
        messages of one partition (round-robin among those that have some); ``[]`` once after
        every partition's pull came back empty (when ``timeout_error``); ``None`` once
        consuming stopped (or, for an iteration, ``token`` is no longer the running one). Keeps
        the flow control of the module docs: at most two pulls of
        ``batch_size`` per partition, the next batch travelling while this one is handled."""
        ev = self._event
        assert ev is not None
        n = len(fetchers)
        expires = self.batch_max_time_to_wait_ms
        while self._consuming and (token is None or self._iter_token is token):
            if self._dls_queue:
                return [self._dls_queue.popleft()]
            now = time.monotonic()
            rr = self._rr_pos % n
            ready = None
            for i in range(n):
                f = fetchers[(rr + i) % n]
                if f.error is not None:
                    err, f.error = f.error, None
                    self._report(err)
                if f.empty_until <= now:
                    # One pull while idle; two (pipelined) once messages flow.
                    f.top_up(batch, expires, flowing=f.buffered > 0)
                if ready is None and f.buffered:
                    ready = (rr + i) % n
            if ready is not None:
                f = fetchers[ready]
                self._rr_pos = ready + 1
                msgs = f.take(batch)
                f.top_up(batch, expires)  # the next batch travels while this one is handled
                self._empty_reported = False
                return self._wrap(msgs, f.partition)
            if any(f.outstanding()[0] for f in fetchers):
                ev.clear()
                await ev.wait()
                continue
            # Every partition's last pull came back empty: pause (only now).
            if timeout_error and not self._empty_reported:
                self._empty_reported = True
                return []
            self._empty_reported = False
            wake_at = min(f.empty_until for f in fetchers)
            delay = wake_at - time.monotonic()
            if delay > 0 and not self._dls_queue:
                self.stats["idle_sleeps"] += 1
                ev.clear()
                try:
                    await asyncio.wait_for(ev.wait(), delay)
                except TimeoutError:
                    pass
            if not self._dls_queue:
                for f in fetchers:
                    f.empty_until = 0.0
        return None

    def _start(self, fixed: int | None) -> list[_Fetcher]:
        """Mark the consumer consuming; the fetchers to serve."""
        self._consuming = True
        if self._event is None:
            self._event = asyncio.Event()
        fetchers = [self._fetchers[fixed]] if fixed is not None else list(self._fetchers.values())
        for f in fetchers:
            f.naking = False
            f.empty_until = 0.0
        self._empty_reported = False
        # DLS messages buffered before consuming started are handed out (once).
        while self.dls_messages:
            self._dls_queue.append(self.dls_messages.popleft())
        return fetchers

    async def _consume_loop(self, callback: Callback, fixed: int | None, timeout_error: bool) -> None:
        fetchers = [self._fetchers[fixed]] if fixed is not None else list(self._fetchers.values())
        try:
            while True:
                # Partitions may have been re-created (stop_consume renews pull inboxes).
                msgs = await self._next_batch(fetchers, self.batch_size, timeout_error)
                if msgs is None:
                    break
                if msgs:
                    await self._call(callback, msgs, None)
                else:
                    await self._call(callback, [], MemphisError("Memphis: TimeoutError"))
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # never die silently
            log.exception("consume loop of %s failed", self.consumer_name)
            self._report(exc)

    def messages(
        self,
        batch_size: int | None = None,
        consumer_partition_key: str | None = None,
        consumer_partition_number: int = -1,
    ) -> AsyncIterator[Message]:
        """Iterate over messages: ``async for msg in consumer.messages(): ... await msg.ack()``
        (``async for msg in consumer`` is the same with the defaults).

        The flow control is ``consume()``'s: at most two pulls of ``batch_size`` (default: the
        consumer's) per partition, the next batch travelling while this one is handed out;
        messages held by the iterator or by your loop longer than 80% of ``max_ack_time_ms``
        get in-progress acks. The loop ends (``StopAsyncIteration``) on ``stop_consume()``,
        ``destroy()`` and ``Memphis.close()``. Leaving it (``break``, an exception) stops
        consuming as ``stop_consume()`` does: messages pulled but not handed out go back to
        the group at once. DLS (resent poison) messages are handed out too. One iteration at a
        time per consumer: a new one (or ``consume()``) ends the previous one, whose loop then
        stops at its next step; while ``consume()`` runs, this raises. Argument errors raise
        here."""
        return self._iterate(*self._begin_iteration(batch_size, consumer_partition_key, consumer_partition_number))

    def __aiter__(self) -> AsyncIterator[Message]:
        return self.messages()

    def batches(
        self,
        batch_size: int | None = None,
        consumer_partition_key: str | None = None,
        consumer_partition_number: int = -1,
    ) -> AsyncIterator[list[Message]]:
        """Iterate over batches: ``async for msgs in consumer.batches(): ...; await
        consumer.ack(msgs)``. The same as :meth:`messages` (flow control, ending, one
        iteration at a time) but one step per batch (a DLS message comes alone), so it costs
        exactly what ``consume()`` costs; a batch handed out is yours (ack or nack it)."""
        return self._iterate_batches(
            *self._begin_iteration(batch_size, consumer_partition_key, consumer_partition_number)
        )

    def _begin_iteration(
        self, batch_size: int | None, partition_key: str | None, partition_number: int
    ) -> tuple[list[_Fetcher], int, object]:
        """Check the arguments and the state (argument errors raise at the call, not at the
        first step) and make this the running iteration: ``(fetchers, batch, token)``."""
        batch = self._iter_batch_size(batch_size)
        fixed = self._partition_for(partition_key, partition_number)
        self._check_usable()
        self._check_idle()
        token = object()
        self._iter_token = token
        return self._start(fixed), batch, token

    def _iter_batch_size(self, batch_size: int | None) -> int:
        if batch_size is None:
            return self.batch_size
        check_int("batch_size", batch_size)
        if batch_size < 1 or batch_size > self.MAX_BATCH_SIZE:
            raise MemphisArgumentError(f"batch_size must be between 1 and {self.MAX_BATCH_SIZE}, not {batch_size}")
        return batch_size

    async def _iterate_batches(
        self, fetchers: list[_Fetcher], batch: int, token: object
    ) -> AsyncIterator[list[Message]]:
        msgs: list[Message] | None = None
        try:
            while self._iter_token is token:
                msgs = await self._next_batch(fetchers, batch, False, token)
                if msgs is None or self._iter_token is not token:
                    break
                self._current = (time.monotonic(), msgs)
                out, msgs = msgs, None
                yield out
                self._current = None
        finally:
            if self._iter_token is token:
                self._iter_token = None
                self._current = None
                self._consuming = False
                self._release(msgs or [])
                while self._dls_queue:
                    self.dls_messages.append(self._dls_queue.popleft())
            elif msgs and not self._conn.is_closed:
                self._give_back(msgs)

    async def _iterate(self, fetchers: list[_Fetcher], batch: int, token: object) -> AsyncIterator[Message]:
        it: Iterator[Message] = iter(())
        try:
            while self._iter_token is token:
                msgs = await self._next_batch(fetchers, batch, False, token)
                it = iter(msgs or ())
                if msgs is None or self._iter_token is not token:
                    break
                self._current = (time.monotonic(), msgs)
                # The batch is handed out straight from a list iterator, no await of our own per
                # message. stop_consume() drains the same iterator (the messages not handed out
                # yet), which also ends this loop.
                self._iter_rest = it
                for m in it:
                    yield m
                self._current = None
        finally:
            # Given back to the group: what this iteration took and did not hand out.
            left = [m for m in it if not m._done]
            if self._iter_token is token:
                # Left by break/exception (not by stop_consume): stop as stop_consume does.
                self._iter_token = None
                self._iter_rest = iter(())
                self._current = None
                self._consuming = False
                self._release(left)
                while self._dls_queue:
                    self.dls_messages.append(self._dls_queue.popleft())
            elif left and not self._conn.is_closed:
                self._give_back(left)

    def _give_back(self, msgs: list[Message]) -> None:
        js = [m._m for m in msgs if not m._dls]
        for m in msgs:
            if m._dls:
                self.dls_messages.appendleft(m)  # handed out again (DLS messages have no nak)
            else:
                m._done = True
        try:
            if js:
                self._conn.ack_many(js, _NAK)
                self.stats["naks"] += len(js)
        except MemphisError as exc:
            log.debug("could not nak held messages: %s", exc)

    # -- batch acknowledgements --------------------------------------------------------------
    @staticmethod
    def _message_list(msgs: object, what: str) -> list[Message]:
        if isinstance(msgs, Message):
            return [msgs]
        if isinstance(msgs, (str, bytes, bytearray, memoryview)) or not isinstance(msgs, Iterable):
            raise MemphisArgumentTypeError(f"{what}(msgs): msgs must be a list of messages, not {type(msgs).__name__}")
        out = list(msgs)
        for m in out:
            if not isinstance(m, Message):
                raise MemphisArgumentTypeError(
                    f"{what}(msgs): msgs must be a list of messages; found a {type(m).__name__} in it"
                )
        return out

    async def ack(self, msgs: Iterable[Message] | Message) -> None:
        """Acknowledge many messages in one call (one write): each as ``Message.ack()`` would
        (resent DLS messages through ``$memphis_pm_acks``). ``Message.ack()`` keeps working."""
        out = self._message_list(msgs, "ack")
        if not out:
            return
        if self._conn.is_closed or self.connection._closed:
            raise MemphisConnectionClosedError("the connection is closed")
        js = []
        for m in out:
            if m._dls:
                await m.ack()
            else:
                m._done = True
                js.append(m._m)
        if js:
            self._conn.ack_many(js, _ACK)

    async def nack(self, msgs: Iterable[Message] | Message) -> None:
        """Redeliver many messages to the group now, in one call (``Message.nack()`` each;
        resent DLS messages are skipped, as ``Message.nack()`` does)."""
        out = self._message_list(msgs, "nack")
        if not out:
            return
        if self._conn.is_closed or self.connection._closed:
            raise MemphisConnectionClosedError("the connection is closed")
        js = []
        for m in out:
            if not m._dls:
                m._done = True
                js.append(m._m)
        if js:
            self._conn.ack_many(js, _NAK)

    async def stop_consume(self) -> None:
        """Stop consuming without destroying the consumer (Go: ``StopConsume``). Buffered
        messages are nacked so the group gets them again; ``consume()`` may be called again.
        Also ends an ``async for`` over the consumer."""
        self._consuming = False
        left = self._end_iteration()
        task = self.t_consume
        self.t_consume = None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._release(left)
        while self._dls_queue:
            self.dls_messages.append(self._dls_queue.popleft())

    def _release(self, left: list[Message]) -> None:
        """Stop pulling and give back what is held (``left``: taken, not handed out; the
        prefetch buffers). The pulls still waiting at the server are ended FIRST (their
        unsubscribe is written before the nacks), so the server cannot redeliver the nacked
        messages into an inbox that is going away (they would wait out the ack wait)."""
        old = self._drop_waiting_pulls()
        if self._conn.is_closed:
            return
        if left:
            self._give_back(left)
        try:
            for f in old:
                self.stats["naks"] += f.nak_all()
        except MemphisError as exc:
            log.debug("could not nak buffered messages: %s", exc)
        self._nak_buffered()

    def _drop_waiting_pulls(self) -> list[_Fetcher]:
        """End the pulls still waiting at the server by replacing their inbox (the server
        forgets pull requests whose reply subject lost its interest). Otherwise they take new
        messages only to nack them, each nack a delivery: two pipelined pulls could make a
        message poison (max_msg_deliveries 2) before any callback saw it."""
        old: list[_Fetcher] = []
        if self._conn.is_closed or self._destroyed:
            return old
        try:
            for p, f in list(self._fetchers.items()):
                if f.outstanding()[0]:
                    fresh = _Fetcher(self, p, f.stream)
                    fresh.naking = True
                    f.close()
                    self._fetchers[p] = fresh
                    old.append(f)
        except MemphisError as exc:  # the connection is closing: nothing more will be pulled
            log.debug("could not renew the pull inboxes: %s", exc)
        return old

    def _nak_buffered(self) -> None:
        if self._conn.is_closed:
            return
        try:
            for f in self._fetchers.values():
                self.stats["naks"] += f.nak_all()
                f.naking = True
            for m in self.cached_messages:
                if not m._done:
                    m._ack(_NAK)
                    self.stats["naks"] += 1
            self.cached_messages = []
        except MemphisError as exc:
            log.debug("could not nak buffered messages: %s", exc)

    async def fetch(
        self,
        batch_size: int = 10,
        consumer_partition_key: str | None = None,
        consumer_partition_number: int = -1,
        prefetch: bool = False,
    ) -> list[Message]:
        """Fetch up to ``batch_size`` messages: DLS messages first, then prefetched ones, then
        a pull that waits at most ``batch_max_time_to_wait_ms`` for the first message. Once at
        least one message is in, it returns as soon as no further one arrived for
        ``fetch_idle_ms`` (20 ms): a trickle is not held back for the whole wait, a busy
        station still fills the batch. The rest of that pull is ended (its inbox replaced), so
        it takes no message nobody waits for. With ``prefetch=True`` the next batch is pulled in the background
        (bounded) for the next call. The acks of the batch before, still unwritten when the pull
        goes out, follow once this batch is in (at most 20 ms later): the server works through
        them while the caller handles it."""
        check_int("batch_size", batch_size)
        if batch_size > self.MAX_BATCH_SIZE or batch_size < 1:
            raise MemphisArgumentError(
                f"Batch size can not be greater than {self.MAX_BATCH_SIZE} or less than 1 (batch_size={batch_size})"
            )
        check_bool("prefetch", prefetch)
        fixed = self._partition_for(consumer_partition_key, consumer_partition_number)
        self._check_usable()
        if self.dls_messages:
            out: list[Message] = []
            while self.dls_messages and len(out) < batch_size:
                out.append(self.dls_messages.popleft())
            return out
        p = fixed if fixed is not None else (int(self._rr.next()) if len(self._fetchers) > 1 else next(iter(self._fetchers)))
        f = self._fetchers[p]
        f.naking = False
        msgs = f.take(batch_size)
        expires = self.batch_max_time_to_wait_ms
        if len(msgs) < batch_size:
            _, outstanding = f.outstanding()
            need = batch_size - len(msgs)
            held = False
            if outstanding < need:
                # Ahead of the acks of the batch before, written since the last call; they
                # follow once this batch is in (at most ACK_HOLD_MAX_S later), so the server
                # works through them while the caller handles it.
                f.request(need - outstanding, expires, heartbeat=False, ahead_of_acks=True)
                held = f.conn.hold_acks()
            deadline = time.monotonic() + expires / 1000 + 2.5
            idle = max(self.fetch_idle_ms, 0) / 1000
            try:
                while len(msgs) < batch_size:
                    if f.buffered:
                        msgs.extend(f.take(batch_size - len(msgs)))
                        continue
                    if f.outstanding()[0] == 0:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    if msgs and _nothing_pending(msgs[-1]):
                        # The stream had nothing more for the group when the last one left:
                        # return what is there after a short idle gap (a trickle is not held
                        # back); under load (more pending) the batch is filled.
                        remaining = min(remaining, idle)
                    if not await f.wait(batch_size - len(msgs), remaining):
                        break
            finally:
                if held:
                    f.conn.release_acks()
            if f.error is not None:
                err, f.error = f.error, None
                if not msgs:
                    raise err
                self._report(err)
        if prefetch:
            # Written at once: the caller handles this batch without yielding, and the next
            # one should be on its way meanwhile (at the tick's end it would go out only with
            # the next fetch, when it is needed: no prefetch at all).
            f.ensure(batch_size, max(expires, 1000), now=True)
        elif len(msgs) < batch_size and f.outstanding()[0] and not self._consuming:
            # Returned before the pull ended: end it (the server forgets a pull whose inbox
            # lost its interest), so it takes no message that nobody waits for (such a
            # message would sit here, or go poison being redelivered into it).
            self._renew(p)
        return self._wrap(msgs, p)

    def _renew(self, partition: int) -> None:
        """Replace a partition's pull inbox (ending its waiting pulls); what it buffered moves
        to the new one."""
        old = self._fetchers[partition]
        fresh = _Fetcher(self, partition, old.stream)
        fresh.chunks, fresh.buffered = old.chunks, old.buffered
        old.chunks, old.buffered = collections.deque(), 0
        old.close()
        self._fetchers[partition] = fresh

    def load_messages_to_cache(self, batch_size: int, partition_number: int) -> None:
        """Pull ``batch_size`` messages of a partition into the prefetch buffer."""
        check_int("batch_size", batch_size, minimum=1, maximum=self.MAX_BATCH_SIZE)
        check_int("partition_number", partition_number)
        self._check_usable()
        f = self._fetchers.get(partition_number) or next(iter(self._fetchers.values()))
        f.ensure(batch_size, max(self.batch_max_time_to_wait_ms, 1000))

    async def _ping_loop(self) -> None:
        """Every 30 s, check that the group's durable consumers still exist (docs/protocol.md §8.6)."""
        while not self._destroyed:
            await asyncio.sleep(self.ping_consumer_interval_ms / 1000)
            for f in list(self._fetchers.values()):
                try:
                    res = await self._conn.request(
                        subjects.js_consumer_info(f.stream, self._durable), b"", 30
                    )
                    info = orjson.loads(res.data) if res.data else {}
                except (MemphisError, ValueError) as exc:
                    if not isinstance(exc, MemphisTimeoutError):
                        log.debug("consumer ping failed: %s", exc)
                    continue
                err = info.get("error") if isinstance(info, dict) else None
                if err:
                    desc = str(err.get("description", err))
                    if "not found" in desc:
                        self._report(MemphisError(f"station unreachable: {desc}"))

    def _start_ping(self) -> None:
        self.t_ping = asyncio.get_running_loop().create_task(
            self._ping_loop(), name=f"memphis-ping-{self.consumer_name}"
        )

    async def _shutdown(self) -> None:
        """Stop everything local: consume task, ping, timers, subscriptions (no request)."""
        await self.stop_consume()
        self._destroyed = True
        if self.t_ping is not None:
            self.t_ping.cancel()
            self.t_ping = None
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        if not self._conn.is_closed:
            for f in self._fetchers.values():
                f.close()
            if self._dls_sid is not None:
                self._conn.unsubscribe(self._dls_sid)
        self._dls_sid = None
        self.dls_messages.clear()

    async def destroy(self, timeout_retries: int = 5) -> None:
        """Stop consuming, unregister the consumer (the group's position is dropped when its
        last member goes), release its subscriptions and drop it from the cache."""
        check_int("timeout_retries", timeout_retries, minimum=0)
        if self._destroyed:
            return
        conn = self.connection
        await self._shutdown()
        req = subjects.ConsumerDestruction(
            name=self.consumer_name,
            station_name=self.station_name,
            username=conn.username,
            connection_id=conn.connection_id or "",
        )
        res = await conn._request(subjects.CONSUMER_DESTRUCTIONS, req.to_json(), 5, timeout_retries)
        error = bytes(res.data).decode("utf-8", "replace")
        conn._release_station(self.internal_station_name)
        for k, v in list(conn.consumers_map.items()):
            if v is self:
                del conn.consumers_map[k]
        if error != "" and "not exist" not in error:
            raise MemphisError(error)
