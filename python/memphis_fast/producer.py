"""Producers (``memphis.producer.Producer``).

Every produced message ends in exactly one outcome, matched in the Rust core: stored, not
stored (no stream for the subject, or a JetStream error), unknown (no acknowledgement within
``ack_wait_sec``, or the connection dropped after the message left), or not sent (the
connection was closed first).

* ``await produce(msg)`` (the default, as in memphis-py) returns once the broker stored the
  message and raises :class:`~memphis_fast.exceptions.MemphisProduceError` otherwise.
  Cancelling it does not take the message back: it was already handed to the connection and
  may be stored; only its outcome is dropped.
* ``await produce(msg, nonblocking=True)`` returns as soon as the message is queued. The
  producer keeps a bounded window of messages in flight (``max_inflight`` messages and
  ``max_inflight_bytes`` bytes, plus ``concurrent_task_limit`` when given): a call waits while
  the window is full, so memory stays bounded when the broker is slow. A cancelled call that is
  still waiting for room sends nothing. A failed message is reported exactly once: to
  ``failure_callback`` if the producer has one, otherwise as a
  :class:`~memphis_fast.exceptions.MemphisProduceError` carrying every failure so far (each a
  :class:`ProduceFailure` naming its message by index and ``msg_id``), raised by the next
  ``produce``, ``flush()``, ``destroy()`` or ``Memphis.close()`` — before that call does
  anything else.
* ``await produce_batch(msgs)`` encodes all messages in one call and one write and returns a
  :class:`ProduceResult` per message.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _subjects as subjects
from ._connection import (
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_MAX_INFLIGHT_BYTES,
    PAYLOADS_BYTES,
    PAYLOADS_NONE,
    OutcomeKind,
    OutcomeReason,
    Partitioner,
    ProduceResult,
    encode_header_lines,
    payload_kinds,
)
from .exceptions import (
    MemphisArgumentError,
    MemphisArgumentTypeError,
    MemphisConnectionClosedError,
    MemphisError,
    MemphisProduceError,
    MemphisSchemaError,
    MemphisTimeoutError,
)
from .headers import Headers, user_headers
from .partition_generator import check_partition_number
from .schemaverse import (
    build_schema_notification,
    build_schemaverse_dls_report,
    encode_plain,
    failed_message_bytes,
)
from .station import Station
from .utils import check_bool, check_int, check_seconds, check_str

if TYPE_CHECKING:
    from .memphis import Memphis
    from .station import StationState

__all__ = [
    "DEFAULT_MAX_INFLIGHT",
    "DEFAULT_MAX_INFLIGHT_BYTES",
    "MemphisProduceTimeoutError",
    "OutcomeKind",
    "OutcomeReason",
    "ProduceFailure",
    "ProduceResult",
    "Producer",
]

log = logging.getLogger("memphis_fast")

_BYTES_TYPES = (bytes, bytearray, memoryview)
#: produce()'s default ack wait and partition number: the defaults are these very objects, so
#: the hot path tests them by identity (any other value, equal or not, takes the checks)
_ACK_WAIT_DEFAULT = 15
_NUMBER_DEFAULT = -1
#: payload types every station takes in some form (others are checked by encoding them)
_PLAIN_TYPES = frozenset((bytes, bytearray, memoryview, str, dict, list))
#: nonblocking produce yields to the event loop after this many messages of a producer
_YIELD_EVERY = 256


class MemphisProduceTimeoutError(MemphisProduceError, MemphisTimeoutError):
    """No acknowledgement within ``ack_wait_sec``; the message may or may not be stored."""


#: The outcome of one message (created in Rust, one small object per message): ``index``,
#: ``msg_id``, ``stored``, ``kind`` (an :class:`OutcomeKind`, equal to its name:
#: ``"stored"``, ``"not_stored"``, ``"unknown"``, ``"not_sent"``, ``"rejected"``), ``reason``
#: (an :class:`OutcomeReason`), ``stream``, ``sequence``, ``duplicate``, ``error`` (the text),
#: ``code``, ``err_code``, ``station``. Returned by an awaited :meth:`Producer.produce` and by
#: :meth:`Producer.produce_batch`; failures of nonblocking produces are reported with it
#: (``ProduceResult`` is imported above from the connection tier).
#: A message that was not stored (or whose fate is unknown): the same class as
#: :data:`ProduceResult` (``kind`` is never ``"stored"``).
ProduceFailure = ProduceResult


def _failure_text(f: ProduceResult) -> str:
    name = f"message {f.index}" + (f" (msg_id {f.msg_id!r})" if f.msg_id else "")
    if f.reason == OutcomeReason.NO_RESPONDERS:
        if f.error and f.error.startswith("no stream leader answered"):
            # A cluster: retried until the ack wait while a stream leader was being elected.
            return f"{name} was not stored on station {f.station}: {f.error}"
        # A single server answers "no responders" only when no stream takes the subject.
        return (
            f"{name} was not stored: no stream for it on station {f.station} (does the station still exist?)"
        )
    if f.reason == OutcomeReason.JETSTREAM_ERROR:
        return f"{name} was not stored: {f.error} (code {f.code}, err_code {f.err_code})"
    return f"{name} {str(f.kind).replace('_', ' ')}: {f.error}"


#: at most one WARNING per producer in this many seconds for failed nonblocking messages
_WARN_EVERY = 1.0


def check_partition_args(key: object, number: object) -> None:
    """``producer_partition_key``/``consumer_partition_key`` (a str or None) and the partition
    number (-1 or 0 = not given, else a partition number >= 1), and never both."""
    if key is not None and type(key) is not str:
        raise MemphisArgumentTypeError(
            f"the partition key must be a str or None, not {type(key).__name__} {key!r}"
        )
    if number != -1:
        n = check_int("the partition number", number)
        if n < 0:
            raise MemphisArgumentError(f"the partition number must be -1 (not given) or >= 1, not {n}")
        if n > 0 and key is not None:
            raise MemphisArgumentError("Can not use both partition number and partition key")


def check_produce_args(
    message: Any,
    ack_wait_sec: Any,
    headers: Any,
    async_produce: Any,
    nonblocking: Any,
    msg_id: Any,
    concurrent_task_limit: Any,
    producer_partition_key: Any,
    producer_partition_number: Any,
) -> None:
    """Every argument of :meth:`Producer.produce` (before anything is created or sent)."""
    if message is None:
        raise MemphisArgumentTypeError("message can not be None")
    if type(message) not in _PLAIN_TYPES:
        encode_plain(message)  # raises MemphisSchemaError("Unsupported message type")
    check_seconds("ack_wait_sec", ack_wait_sec)
    if headers is not None:
        user_headers(headers)
    check_bool("async_produce", async_produce, optional=True)
    check_bool("nonblocking", nonblocking)
    check_str("msg_id", msg_id, optional=True)
    if concurrent_task_limit is not None:
        check_int("concurrent_task_limit", concurrent_task_limit, minimum=1)
    check_partition_args(producer_partition_key, producer_partition_number)


def _produce_error(r: ProduceResult) -> MemphisProduceError:
    """The exception for a message that was not stored, its class chosen from the reason."""
    # Both mean the ack wait ran out without the server confirming the message.
    timed_out = r.reason in (OutcomeReason.ACK_TIMEOUT, OutcomeReason.DUPLICATE_IN_PROCESS)
    cls = MemphisProduceTimeoutError if timed_out else MemphisProduceError
    return cls(_failure_text(r), failures=[r])


class _InFlight:
    """``producer.background_tasks``: sized like memphis-py's set of tasks, i.e. the number
    of this producer's messages still in flight (user code polls ``len()`` until 0)."""

    __slots__ = ("_producer",)

    def __init__(self, producer: Producer) -> None:
        self._producer = producer

    def __len__(self) -> int:
        return self._producer.inflight

    def __bool__(self) -> bool:
        return self._producer.inflight > 0

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __repr__(self) -> str:
        return f"<{len(self)} messages in flight>"


class Producer:
    """A producer. Created by :meth:`Memphis.producer` (or :meth:`Station.create_producer`)."""

    def __init__(
        self,
        connection: Memphis,
        producer_name: str,
        station_name: str | list[str],
        real_name: str,
        *,
        state: StationState | None = None,
        partitions: list[int] | None = None,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
        failure_callback: Callable[[ProduceResult], Any] | None = None,
        auto_msg_id: bool = False,
        delivery_callback: Callable[[ProduceResult], Any] | None = None,
    ) -> None:
        self.connection = connection
        self.producer_name = producer_name.lower()
        self.station_name = station_name
        self.real_name = real_name
        self.max_inflight = max(1, int(max_inflight))
        self.max_inflight_bytes = max(1, int(max_inflight_bytes))
        self.failure_callback = failure_callback
        self.delivery_callback = delivery_callback
        self.auto_msg_id = auto_msg_id
        self._failures: list[ProduceResult] = []
        self._warned_at = 0.0
        self._unwarned = 0
        self._callback_tasks: set[asyncio.Task[Any]] = set()
        self._count = 0
        self._destroyed = False
        self._id_prefix = uuid.uuid4().hex[:12] + "-"
        self.background_tasks = _InFlight(self)
        if isinstance(station_name, list):
            self.is_multi_station_producer = True
            self._opts: dict[str, Any] = {
                "max_inflight": max_inflight,
                "max_inflight_bytes": max_inflight_bytes,
                "failure_callback": failure_callback,
                "auto_msg_id": auto_msg_id,
                "delivery_callback": delivery_callback,
            }
            return
        self.is_multi_station_producer = False
        self.station = Station(connection, station_name)
        self.internal_station_name = subjects.internal_name(station_name)
        assert state is not None
        self._state = state
        self._conn = connection._require_conn()
        if delivery_callback is not None:
            # Every outcome of a nonblocking message (stored ones too) goes to _on_outcome;
            # without a delivery callback the group reports failures only (no cost).
            self._group = self._conn.new_group(str(station_name), report_stored=True)
            self._conn.set_failure_handler(self._group, self._on_outcome)
        else:
            self._group = self._conn.new_group(str(station_name))
            self._conn.set_failure_handler(self._group, self._on_failure)
        self._header_lines = encode_header_lines(
            {
                subjects.HEADER_PRODUCED_BY: self.producer_name,
                subjects.HEADER_CONNECTION_ID: connection.connection_id,
            }
        )
        self._partitions = partitions
        self._subjects: dict[int, str] = {}
        if partitions is None:
            self._single_subject: str | None = subjects.final_subject(subjects.stream_name(station_name, 0))
        elif len(partitions) == 1:
            self._single_subject = subjects.final_subject(subjects.stream_name(station_name, partitions[0]))
        else:
            self._single_subject = None
            self._subjects = {
                p: subjects.final_subject(subjects.stream_name(station_name, p)) for p in partitions
            }
            self.partition_generator = Partitioner(list(partitions))

    def __repr__(self) -> str:
        return f"<Producer {self.producer_name} station={self.station_name}>"

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Destroy the producer: wait for its in-flight messages, unregister it, raise failures
        not yet reported (logged instead when the block is already raising)."""
        if exc is None:
            await self.destroy()
            return
        try:
            await self.destroy()
        except MemphisError:
            log.exception("destroying producer %s on the way out of an exception", self.producer_name)

    # -- state -------------------------------------------------------------------------------
    @property
    def inflight(self) -> int:
        """Messages of this producer sent and not yet acknowledged."""
        if self.is_multi_station_producer:
            total = 0
            for sn in self.station_name:
                p = self.connection.producers_map.get(f"{subjects.internal_name(sn)}_{self.real_name}")
                if p is not None:
                    total += p.inflight
            return total
        return self._conn.group_inflight(self._group)

    # -- routing -----------------------------------------------------------------------------
    def _subject(self, key: str | None, number: int) -> str:
        single = self._single_subject
        state = self._state
        if single is not None:
            if number > 0:
                if key is not None:
                    raise MemphisArgumentError("Can not use both partition number and partition key")
                self.validate_partition_number(number, self.internal_station_name)
            subject = single
            partition = self._partitions[0] if self._partitions else None
        else:
            if number > 0 and key is not None:
                raise MemphisError("Can not use both partition number and partition key")
            if key is not None:
                partition = self.partition_generator.for_key(key)
            elif number > 0:
                self.validate_partition_number(number, self.internal_station_name)
                partition = number
            else:
                partition = self.partition_generator.next()
            subject = self._subjects[partition]
        if state.functions and partition is not None:
            fid = state.functions.get(str(partition))
            if fid is not None:
                return subjects.functions_subject(
                    subjects.stream_name(self.internal_station_name, partition), fid
                )
        return subject

    def get_partition_from_key(self, key: str) -> int:
        """The partition a key routes to (murmur3, seed 31, as memphis-py)."""
        check_str("key", key)
        if self.is_multi_station_producer:
            raise MemphisError("a multi-station producer has no partitions of its own")
        if not self._partitions:
            raise MemphisError("the station has no partitions")
        if len(self._partitions) == 1:
            return self._partitions[0]
        return int(self.partition_generator.for_key(key))

    def validate_partition_number(self, partition_number: int, station_name: str) -> None:
        check_int("partition_number", partition_number)
        check_str("station_name", station_name)
        if self.is_multi_station_producer:
            raise MemphisError("a multi-station producer has no partitions of its own")
        check_partition_number(self._partitions, partition_number, station_name)

    # -- failures ----------------------------------------------------------------------------
    def _warn(self, f: ProduceResult) -> None:
        """One WARNING per second at most (an outage fails thousands of messages): the first
        failure, then a summary of how many more failed since."""
        now = time.monotonic()
        if now - self._warned_at < _WARN_EVERY:
            self._unwarned += 1
            log.debug("memphis producer %s: %s", self.producer_name, _failure_text(f))
            return
        more = f" ({self._unwarned} more failed since the last warning)" if self._unwarned else ""
        self._warned_at = now
        self._unwarned = 0
        log.warning("memphis producer %s: %s%s", self.producer_name, _failure_text(f), more)

    def _on_failure(self, f: ProduceResult) -> None:
        cb = self.failure_callback
        dcb = self.delivery_callback
        if cb is None and dcb is None:
            self._warn(f)
            self._failures.append(f)
            return
        # Reported to a callback: a DEBUG line only.
        log.debug("memphis producer %s: %s", self.producer_name, _failure_text(f))
        if cb is not None:
            self._run_callback(cb, f, "failure")
        if dcb is not None:
            self._run_callback(dcb, f, "delivery")

    def _on_outcome(self, r: ProduceResult) -> None:
        """Every outcome of a nonblocking message (with a delivery callback)."""
        if r.stored:
            dcb = self.delivery_callback
            if dcb is not None:
                self._run_callback(dcb, r, "delivery")
        else:
            self._on_failure(r)

    def _run_callback(self, cb: Callable[[ProduceResult], Any], r: ProduceResult, what: str) -> None:
        try:
            res = cb(r)
            if inspect.isawaitable(res):
                task = asyncio.ensure_future(res)
                self._callback_tasks.add(task)
                task.add_done_callback(self._callback_done)
        except Exception:
            log.exception("produce %s callback raised", what)

    def _callback_done(self, task: asyncio.Task[Any]) -> None:
        self._callback_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("produce callback raised", exc_info=task.exception())

    def take_failures(self) -> list[ProduceResult]:
        """Failures not yet reported (they are not raised afterwards)."""
        if self.is_multi_station_producer:
            out: list[ProduceResult] = []
            for sn in self.station_name:
                p = self.connection.producers_map.get(f"{subjects.internal_name(sn)}_{self.real_name}")
                if p is not None:
                    out.extend(p.take_failures())
            return out
        f, self._failures = self._failures, []
        return f

    def _raise_failures(self) -> None:
        failures = self.take_failures()
        if failures:
            first = _failure_text(failures[0])
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise MemphisProduceError(
                f"{len(failures)} earlier nonblocking produce(s) failed: {first}{more}",
                failures=failures,
            )

    # -- producing ---------------------------------------------------------------------------
    async def produce(
        self,
        message: Any,
        ack_wait_sec: int = 15,
        headers: Headers | Mapping[str, Any] | None = None,
        async_produce: bool | None = None,
        nonblocking: bool = False,
        msg_id: str | None = None,
        concurrent_task_limit: int | None = None,
        producer_partition_key: str | None = None,
        producer_partition_number: int = -1,
    ) -> ProduceResult | None:
        """Produce a message; an awaited produce returns its :data:`ProduceResult` (stream,
        sequence, duplicate), a nonblocking one ``None``.

        Args:
            message: ``bytes``, ``bytearray``, ``memoryview``, ``str`` (UTF-8), ``dict`` (JSON),
                a protobuf message, a GraphQL document; validated against the station's schema.
            ack_wait_sec: how long to wait for the broker's acknowledgement (default 15).
            headers: :class:`Headers` or a dict; never modified.
            async_produce: deprecated name of ``nonblocking``.
            nonblocking: return once the message is queued (see the module docs).
            msg_id: de-duplication id (sent as ``msg-id`` and ``Nats-Msg-Id``).
            concurrent_task_limit: with ``nonblocking``, wait when this many messages are in
                flight until half of them are acknowledged.
            producer_partition_key: route by key (murmur3 as memphis-py).
            producer_partition_number: route to this partition.

        Raises:
            MemphisArgumentTypeError, MemphisArgumentError: a wrong type or a value out of
                range (``ack_wait_sec`` > 0, ``concurrent_task_limit`` >= 1, a partition number
                of the station, a key or a number), before anything is sent.
            MemphisConnectionClosedError: the connection was closed.
            MemphisSchemaError: the message does not match the station's schema.
            MemphisProduceError: the message (or, first, an earlier nonblocking one) failed.
            MemphisHeaderError: a header key starts with ``$memphis``.
        """
        if self.is_multi_station_producer:
            check_produce_args(
                message,
                ack_wait_sec,
                headers,
                async_produce,
                nonblocking,
                msg_id,
                concurrent_task_limit,
                producer_partition_key,
                producer_partition_number,
            )
            if self._destroyed:
                raise MemphisError(f"producer {self.producer_name} was destroyed")
            await self._multi_station_produce(
                message,
                ack_wait_sec=ack_wait_sec,
                headers=headers,
                async_produce=async_produce,
                nonblocking=nonblocking,
                msg_id=msg_id,
                concurrent_task_limit=concurrent_task_limit,
                producer_partition_key=producer_partition_key,
                producer_partition_number=producer_partition_number,
            )
            return None
        if self._failures:
            self._raise_failures()
        # Arguments are checked where they are used, before anything is sent: the defaults
        # cost one identity test each (the nonblocking path is hot).
        if ack_wait_sec is _ACK_WAIT_DEFAULT:
            ack_ms = 15000
        else:
            ack_ms = int(check_seconds("ack_wait_sec", ack_wait_sec) * 1000)
        if nonblocking is not True and nonblocking is not False:
            check_bool("nonblocking", nonblocking)
        if async_produce is not None:
            check_bool("async_produce", async_produce, optional=True)
        if concurrent_task_limit is not None:
            check_int("concurrent_task_limit", concurrent_task_limit, minimum=1)
        if self._destroyed:
            raise MemphisError(f"producer {self.producer_name} was destroyed")
        # A closed connection: the core refuses the publish with the same
        # MemphisConnectionClosedError("the connection is closed"), before sending anything.
        if msg_id is not None:
            check_str("msg_id", msg_id, optional=True)
            if msg_id == "":
                msg_id = None
        if msg_id is None and self.auto_msg_id:
            msg_id = f"{self._id_prefix}{self._count}"
        if producer_partition_key is None and producer_partition_number is _NUMBER_DEFAULT:
            if self._state.functions:
                subject = self._subject(None, -1)
            elif self._single_subject is not None:
                subject = self._single_subject
            else:  # round-robin over the partitions (what _subject does, without its tests)
                subject = self._subjects[self.partition_generator.next()]
        else:
            check_partition_args(producer_partition_key, producer_partition_number)
            subject = self._subject(producer_partition_key, producer_partition_number)
        schema = self._state.schema.schema
        if schema is None and type(message) in _BYTES_TYPES:
            data: Any = message
        else:
            if message is None:
                raise MemphisArgumentTypeError("message can not be None")
            data = self._encode(schema, message, headers)
        hdrs = None if headers is None else user_headers(headers)
        conn = self._conn
        index = self._count
        if async_produce:
            warnings.warn(
                "The argument async_produce is deprecated. Please use the argument nonblocking instead.",
                DeprecationWarning,
                stacklevel=2,
            )
            nonblocking = True
        if nonblocking:
            group = self._group
            if concurrent_task_limit is not None and conn.group_inflight(group) >= concurrent_task_limit:
                target = concurrent_task_limit / 2
                while conn.group_inflight(group) > target and not conn.is_closed:
                    await conn.wait_progress()
            while not conn.publish_windowed(
                subject,
                data,
                group,
                index,
                ack_ms,
                self._header_lines,
                hdrs,
                msg_id,
                self.max_inflight,
                self.max_inflight_bytes,
            ):
                # The window is full or the socket is backed up: wait (bounded memory).
                await conn.wait_room()
            self._count = index + 1
            if not (index + 1) % _YIELD_EVERY:
                # A produce loop with room in its window would never suspend: let the tick's
                # write go out and other tasks run now and then.
                await asyncio.sleep(0)
            return None
        self._count = index + 1
        r = await conn.publish_awaited(
            subject, data, self._group, index, ack_ms, self._header_lines, hdrs, msg_id
        )
        if self.delivery_callback is not None:
            self._run_callback(self.delivery_callback, r, "delivery")
        if not r.stored:
            raise _produce_error(r)
        return r

    async def produce_batch(
        self,
        messages: Sequence[Any],
        ack_wait_sec: int = 15,
        headers: Headers | Mapping[str, Any] | None = None,
        msg_ids: Sequence[str | None] | None = None,
        producer_partition_key: str | None = None,
        producer_partition_number: int = -1,
    ) -> list[ProduceResult]:
        """Produce many messages with one encode call and one write per partition; returns one
        :class:`ProduceResult` per message, in order. Messages rejected before sending (schema,
        size) are results too; nothing is raised for them. Without a key or number, messages
        are spread round-robin over the partitions as single produces would be."""
        if self.is_multi_station_producer:
            raise MemphisError("produce_batch is not available on a multi-station producer")
        if self._failures:
            self._raise_failures()
        if isinstance(messages, (str, bytes, bytearray, memoryview)) or not isinstance(messages, Sequence):
            raise MemphisArgumentTypeError(
                f"messages must be a list (or tuple) of messages, not {type(messages).__name__}"
            )
        kinds = payload_kinds(messages)
        if kinds == PAYLOADS_NONE:
            raise MemphisArgumentTypeError("messages can not contain None")
        ack_ms = int(check_seconds("ack_wait_sec", ack_wait_sec) * 1000)
        if msg_ids is not None:
            if isinstance(msg_ids, (str, bytes)) or not isinstance(msg_ids, Sequence):
                raise MemphisArgumentTypeError(
                    f"msg_ids must be a list of str (or None) or None, not {type(msg_ids).__name__}"
                )
            for mid in msg_ids:
                check_str("each of msg_ids", mid, optional=True)
            if len(msg_ids) != len(messages):
                raise MemphisArgumentError(f"{len(msg_ids)} msg_ids for {len(messages)} messages")
        check_partition_args(producer_partition_key, producer_partition_number)
        uh = user_headers(headers)
        if self._destroyed:
            raise MemphisError(f"producer {self.producer_name} was destroyed")
        if self._conn.is_closed:
            raise MemphisConnectionClosedError("the connection is closed")
        if producer_partition_number > 0:
            self._subject(producer_partition_key, producer_partition_number)  # validates the number
        if uh is not None:
            header_lines = self._header_lines + encode_header_lines(uh)
        else:
            header_lines = self._header_lines
        base = self._count
        n = len(messages)
        self._count += n
        given: list[str | None] | None = list(msg_ids) if msg_ids is not None else None
        if self.auto_msg_id:
            prefix = self._id_prefix
            if given is None:
                given = [f"{prefix}{base + i}" for i in range(n)]
            else:
                given = [m if m else f"{prefix}{base + i}" for i, m in enumerate(given)]
        schema = self._state.schema.schema
        single = self._single_subject
        if (
            schema is None
            and not self._state.functions
            and producer_partition_key is None
            and producer_partition_number <= 0
            and kinds == PAYLOADS_BYTES
        ):
            # The common case: bytes sent as given, round-robin over the partitions.
            if single is None:
                return await self._produce_batch_spread(messages, ack_ms, header_lines, given, base)
            batch = list(messages)  # as it is now: the caller's list may change while we wait
            conn = self._conn
            await conn.wait_writable()
            out = await conn.publish_batch(
                single,
                batch,
                self._group,
                ack_ms,
                header_lines,
                given if given is not None and any(given) else None,
                base,
            )
            self._deliver_all(out)
            return out
        results: list[ProduceResult | None] = [None] * n
        ids: list[str | None] = given if given is not None else [None] * n
        # Encode, and group by subject (round-robin as single produces would route them).
        groups: dict[str, tuple[list[int], list[Any]]] = {}
        for i, m in enumerate(messages):
            try:
                data = m if schema is None and type(m) in _BYTES_TYPES else self._encode(schema, m, headers)
                subject = self._subject(producer_partition_key, producer_partition_number)
            except MemphisError as exc:
                results[i] = ProduceResult(
                    base + i, ids[i], False, "rejected", error=exc.message, station=str(self.station_name)
                )
                continue
            idx, datas = groups.setdefault(subject, ([], []))
            idx.append(i)
            datas.append(data)
        conn = self._conn
        await conn.wait_writable()
        if len(groups) == 1 and results.count(None) == len(results):
            # One subject and nothing refused locally: the batch's results are the answer.
            ((subject, (idx, datas)),) = groups.items()
            out = await conn.publish_batch(
                subject,
                datas,
                self._group,
                ack_ms,
                header_lines,
                ids if any(ids) else None,
                base,
            )
            self._deliver_all(out)
            return out
        calls = [
            conn.publish_batch(
                subject,
                datas,
                self._group,
                ack_ms,
                header_lines,
                [ids[i] for i in idx] if any(ids[i] for i in idx) else None,
                0,
                [base + i for i in idx],
            )
            for subject, (idx, datas) in groups.items()
        ]
        done = await asyncio.gather(*calls)
        for (idx, _), outcomes in zip(groups.values(), done, strict=True):
            for pos, r in enumerate(outcomes):
                results[idx[pos]] = r
        final = [r for r in results if r is not None]
        self._deliver_all(final)
        return final

    async def _produce_batch_spread(
        self,
        messages: Sequence[Any],
        ack_ms: int,
        header_lines: bytes,
        ids: list[str | None] | None,
        base: int,
    ) -> list[ProduceResult]:
        """``produce_batch`` of bytes spread round-robin over several partitions, without a
        Python step per message: round-robin repeats every ``k`` (the partition count)
        messages, so the messages of one partition are the slice ``messages[j::k]``. The
        partition generator ends where ``n`` single produces would have left it."""
        gen = self.partition_generator
        n, k = len(messages), len(self._subjects)
        order = [gen.next() for _ in range(min(n, k))]
        for _ in range((n - k) % k if n > k else 0):
            gen.next()
        # Sliced now (the caller's list may change while we wait); any Sequence works.
        msgs = messages if type(messages) is list or type(messages) is tuple else list(messages)
        with_ids = ids if ids is not None and any(ids) else None
        parts = [
            (self._subjects[p], msgs[j::k], None if with_ids is None else with_ids[j::k])
            for j, p in enumerate(order)
        ]
        conn = self._conn
        await conn.wait_writable()
        calls = [
            conn.publish_batch(
                subject, datas, self._group, ack_ms, header_lines, part_ids, 0, range(base + j, base + n, k)
            )
            for j, (subject, datas, part_ids) in enumerate(parts)
        ]
        done = await asyncio.gather(*calls)
        final: list[Any] = [None] * n
        for j, outcomes in enumerate(done):
            final[j::k] = outcomes
        self._deliver_all(final)
        return final

    def _deliver_all(self, results: list[ProduceResult]) -> None:
        dcb = self.delivery_callback
        if dcb is not None:
            for r in results:
                self._run_callback(dcb, r, "delivery")

    def _encode(self, schema: Any, message: Any, headers: Any) -> Any:
        """The bytes to send for ``message``: validated by the station's schema (a failure is
        reported as docs/protocol.md §7.8 says, then raised), or encoded as memphis-py does without one."""
        if schema is None:
            return encode_plain(message)
        try:
            return schema.encode(message)
        except MemphisSchemaError as exc:
            self._report_schema_failure(message, headers, exc)
            raise

    def _report_schema_failure(self, message: Any, headers: Any, exc: MemphisSchemaError) -> None:
        """Spec 7.8: the schemaverse DLS report and the notification, as the flags ask."""
        conn = self.connection
        try:
            data = getattr(exc, "payload", None)
            if data is None:
                data = failed_message_bytes(message)
            hdrs = user_headers(headers) if headers is not None else None
            if self._state.schemaverse_to_dls:
                body = build_schemaverse_dls_report(
                    internal_station_name=self.internal_station_name,
                    producer_name=self.producer_name,
                    connection_id=conn.connection_id or "",
                    data=data,
                    headers=hdrs,
                    validation_error=exc,
                )
                self._conn.publish(subjects.SCHEMAVERSE_DLS, body)
            if conn._send_notification:
                body = build_schema_notification(
                    station_name=str(self.station_name),
                    producer_name=self.producer_name,
                    validation_error=exc,
                    data=data,
                )
                self._conn.publish(subjects.NOTIFICATIONS, body)
        except MemphisError:
            log.exception("could not report a schema validation failure")

    async def _multi_station_produce(self, message: Any, **kwargs: Any) -> None:
        conn = self.connection
        for sn in self.station_name:
            if self._destroyed:
                raise MemphisError(f"producer {self.producer_name} was destroyed")
            p = await conn.producer(sn, self.producer_name, **self._opts)
            await p.produce(message, **kwargs)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every message of this producer is acknowledged (or failed), then raise
        the failures not yet reported. ``timeout`` ``None`` waits as long as the longest ack
        wait takes."""
        if timeout is not None:
            check_seconds("timeout", timeout, positive=False)
        if self.is_multi_station_producer:
            for sn in self.station_name:
                p = self.connection.producers_map.get(f"{subjects.internal_name(sn)}_{self.real_name}")
                if p is not None:
                    await p.flush(timeout)
            return
        ok = await self._conn.wait_group_drained(self._group, timeout)
        self._raise_failures()
        if not ok:
            raise MemphisTimeoutError(f"timeout: {self.inflight} messages still in flight after {timeout} s")

    async def destroy(self, timeout_retries: int = 5) -> None:
        """Wait for in-flight messages, unregister the producer, drop it from the cache; raises
        failures not yet reported afterwards."""
        check_int("timeout_retries", timeout_retries, minimum=0)
        if self.is_multi_station_producer:
            # Marked first: a produce() running concurrently stops instead of re-creating
            # the per-station producers.
            self._destroyed = True
            for sn in self.station_name:
                p = self.connection.producers_map.get(f"{subjects.internal_name(sn)}_{self.real_name}")
                if p is not None:
                    await p.destroy(timeout_retries)
            return
        if self._destroyed:
            return
        conn = self.connection
        if not self._conn.is_closed:
            await self._conn.wait_group_drained(self._group, None)
        req = subjects.ProducerDestruction(
            name=self.producer_name,
            station_name=str(self.station_name),
            username=conn.username,
            connection_id=conn.connection_id or "",
        )
        res = await conn._request(subjects.PRODUCER_DESTRUCTIONS, req.to_json(), 5, timeout_retries)
        error = bytes(res.data).decode("utf-8", "replace")
        if error != "" and "not exist" not in error:
            raise MemphisError(error)
        self._destroyed = True
        conn._release_station(self.internal_station_name)
        conn.producers_map.pop(f"{self.internal_station_name}_{self.real_name}", None)
        self._conn.drop_group(self._group)
        self._raise_failures()
