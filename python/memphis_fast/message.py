"""Consumed messages (``memphis.message.Message``)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _subjects as subjects
from ._connection import ACK, IN_PROGRESS, NAK, NAK_DELAY, TERM, Msg
from .exceptions import MemphisArgumentError, MemphisArgumentTypeError, MemphisConnectError, MemphisError

if TYPE_CHECKING:
    from .memphis import Memphis
    from .station import Station

__all__ = ["Message"]

_new = object.__new__

log = logging.getLogger("memphis_fast")

_ACK = ACK
_NAK = NAK
_NAK_DELAY = NAK_DELAY
_IN_PROGRESS = IN_PROGRESS
_TERM = TERM
_PM_ID = subjects.HEADER_PM_ID
_PM_CG = subjects.HEADER_PM_CG_NAME


@dataclass(frozen=True)
class _Sequence:
    stream: int
    consumer: int


@dataclass(frozen=True)
class _Metadata:
    """nats-py's ``Msg.Metadata`` shape, for code that reads ``message.message.metadata``."""

    sequence: _Sequence
    num_pending: int
    num_delivered: int
    timestamp: datetime.datetime
    stream: str
    consumer: str
    domain: str | None = None


class _NatsMsgView:
    """``message.message``: the raw delivery, shaped like nats-py's ``Msg`` (``data``,
    ``headers``, ``subject``, ``reply``, ``metadata``) for code written against memphis-py."""

    __slots__ = ("_m",)

    def __init__(self, m: Msg) -> None:
        self._m = m

    @property
    def data(self) -> bytes:
        return bytes(self._m.data)

    @property
    def headers(self) -> dict[str, str] | None:
        return self._m.headers  # type: ignore[no-any-return]

    @property
    def subject(self) -> str:
        return str(self._m.subject)

    @property
    def reply(self) -> str:
        return self._m.reply or ""

    @property
    def metadata(self) -> _Metadata:
        md = self._m.metadata()
        if md is None:
            raise MemphisError("not a JetStream message")
        stream, consumer, delivered, sseq, cseq, ts, pending, domain = md
        return _Metadata(
            _Sequence(sseq, cseq),
            pending,
            delivered,
            datetime.datetime.fromtimestamp(ts / 1e9, tz=datetime.UTC),
            stream,
            consumer,
            domain,
        )


class _Ctx:
    """What the messages of one consumer share (one object per consumer, not per message)."""

    __slots__ = ("memphis", "cg_name", "internal_station_name", "ack")

    def __init__(self, memphis: Memphis, cg_name: str, internal_station_name: str) -> None:
        self.memphis = memphis
        self.cg_name = cg_name
        self.internal_station_name = internal_station_name
        conn = memphis._conn
        #: the connection's ``ack`` (bound once per consumer: the hot path)
        self.ack: Callable[..., None] = conn.ack if conn is not None else _not_connected


def _not_connected(msg: Msg, kind: int = ACK, delay_ns: int = 0) -> None:
    raise MemphisConnectError("not connected: the message's Memphis connection is not open")


class Message:
    """A consumed message.

    ``data`` gives the payload as immutable ``bytes`` without copying; ``get_data()`` keeps
    memphis-py's fresh ``bytearray``. ``ack``/``nack``/``delay``/``dead_letter`` queue their
    acknowledgement; acks of one event-loop tick go out in one write (or every ~32 KiB of them: a few hundred).
    """

    __slots__ = ("_m", "_c", "partition", "_done", "_dls")

    def __init__(
        self,
        message: Any,
        connection: Memphis,
        cg_name: str,
        internal_station_name: str,
        partition: int = 0,
    ) -> None:
        self._m = message
        self._c = _Ctx(connection, cg_name, internal_station_name)
        self.partition = partition
        self._done = False
        self._dls = not message.is_js if isinstance(message, Msg) else True

    @classmethod
    def _wrap(cls, m: Msg, ctx: _Ctx, partition: int, dls: bool = False) -> Message:
        self = _new(cls)
        self._m = m
        self._c = ctx
        self.partition = partition
        self._done = False
        self._dls = dls
        return self

    @property
    def connection(self) -> Memphis:
        return self._c.memphis

    @property
    def cg_name(self) -> str:
        return self._c.cg_name

    @property
    def internal_station_name(self) -> str:
        return self._c.internal_station_name

    def __repr__(self) -> str:
        return f"<Message {self.internal_station_name} partition={self.partition} seq={self.get_sequence_number()}>"

    # -- payload -----------------------------------------------------------------------------
    @property
    def data(self) -> bytes:
        """The payload (``bytes``, no copy)."""
        return self._m.data  # type: ignore[no-any-return]

    @property
    def message(self) -> _NatsMsgView:
        """The underlying delivery (``.data``, ``.headers``, ``.metadata``...)."""
        return _NatsMsgView(self._m)

    @property
    def station(self) -> Station:
        from .station import Station

        return Station(self.connection, self.internal_station_name.replace("#", "."))

    def get_data(self) -> bytearray:
        """The payload as a new ``bytearray`` (memphis-py's type; ``data`` is cheaper)."""
        return self._m.data_bytearray()  # type: ignore[no-any-return]

    async def get_data_deserialized(self) -> Any:
        """The payload decoded with the station's current schema: a dict (json, avro), a new
        protobuf message (protobuf), the text (graphql), or the raw ``bytearray`` without a
        schema. Raises :class:`~memphis_fast.exceptions.MemphisSchemaError` when the data does
        not match (memphis-py returned ``None``, defect B9)."""
        state = self.connection._stations.get(self.internal_station_name)
        if state is None:
            return bytearray(self._m.data)
        return state.schema.decode(self._m.data)

    def get_headers(self) -> dict[str, str] | None:
        """All headers, ``$memphis_*`` included (as memphis-py); ``None`` without headers."""
        return self._m.headers  # type: ignore[no-any-return]

    def get_sequence_number(self) -> int | None:
        """The stream sequence of the message in its partition (``None`` for DLS messages)."""
        return self._m.stream_seq  # type: ignore[no-any-return]

    def get_timesent(self) -> datetime.datetime | None:
        """When the broker stored the message (UTC ``datetime``; ``None`` for DLS messages).
        memphis-py always returned ``None`` (defect B13)."""
        ts = self._m.timestamp_ns
        if ts is None:
            return None
        return datetime.datetime.fromtimestamp(ts / 1e9, tz=datetime.UTC)

    def get_delivery_count(self) -> int | None:
        """How many times the message has been delivered to this group (1 the first time)."""
        return self._m.delivered  # type: ignore[no-any-return]

    def get_redelivery_count(self) -> int | None:
        """How many times it was delivered before this delivery (0 the first time)."""
        d = self._m.delivered
        return None if d is None else d - 1

    # -- acknowledging -----------------------------------------------------------------------
    def _is_dls(self) -> bool:
        return self._dls

    def _pm_headers(self) -> tuple[str, str] | None:
        h = self._m.headers
        if h and _PM_ID in h and _PM_CG in h:
            return h[_PM_ID], h[_PM_CG]
        return None

    def _ack(self, kind: int, delay_ns: int = 0) -> None:
        self._done = True
        conn = self.connection._require_conn()
        conn.ack(self._m, kind, delay_ns)

    async def ack(self) -> None:
        """Acknowledge: processed; not redelivered to this consumer group. For a resent DLS
        message, acknowledges it to the broker (``$memphis_pm_acks``)."""
        if self._dls:
            pm = self._pm_headers()
            if pm is None:
                raise MemphisConnectError("message has no reply subject and is not a DLS message")
            try:
                body = subjects.PmAck(id=int(pm[0]), cg_name=pm[1]).to_json()
            except ValueError as exc:
                raise MemphisConnectError(f"bad {subjects.HEADER_PM_ID} header: {pm[0]!r}") from exc
            self._done = True
            try:
                self.connection._require_conn().publish(subjects.PM_ACKS, body)
            except MemphisError as exc:
                raise MemphisConnectError(exc.message) from exc
            return
        self._done = True
        try:
            self._c.ack(self._m)
        except MemphisError as exc:
            raise MemphisConnectError(exc.message) from exc

    async def nack(self) -> None:
        """Redeliver to the group now, without waiting for the ack wait. Does nothing for a
        resent DLS message (it has no JetStream delivery to nack)."""
        if self._is_dls():
            log.debug("nack() on a DLS message is a no-op")
            return
        self._ack(_NAK)

    async def delay(self, delay: float) -> None:
        """Redeliver after ``delay`` seconds (counts as a delivery)."""
        if self._pm_headers() is not None or self._is_dls():
            raise MemphisError("cannot delay DLS message")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise MemphisArgumentTypeError(f"delay must be a number of seconds, not {type(delay).__name__} {delay!r}")
        if delay != delay or delay in (float("inf"), float("-inf")):
            raise MemphisArgumentError(f"delay must be a finite number of seconds, not {delay!r}")
        ns = int(float(delay) * 1_000_000_000)
        if ns < 0:
            raise MemphisArgumentError(f"delay can not be negative (delay={delay!r})")
        self._ack(_NAK_DELAY, ns)

    async def dead_letter(self, reason: str) -> None:
        """Send the message to the dead-letter station with ``reason``: never redelivered to
        this group (``+TERM``), recorded by the broker (``$memphis_nacked_dls``); other groups
        are unaffected. memphis-py terminated the message but never sent the record (B13)."""
        if not isinstance(reason, str):
            raise MemphisArgumentTypeError(f"reason must be a str, not {type(reason).__name__} {reason!r}")
        if self._is_dls():
            log.debug("dead_letter() on a DLS message is a no-op")
            return
        seq = self._m.stream_seq
        try:
            self._ack(_TERM)
            body = subjects.NackedDls(
                station_name=self.internal_station_name,
                error=str(reason),
                partition=self.partition,
                cg_name=self.cg_name.lower(),
                seq=seq if seq is not None else 0,
            ).to_json()
            self.connection._require_conn().publish(subjects.NACKED_DLS, body)
        except MemphisError as exc:
            raise MemphisConnectError(exc.message) from exc

    async def in_progress(self) -> None:
        """Tell the broker the message is still being worked on (resets its ack wait)."""
        if not self._is_dls():
            self.connection._require_conn().ack(self._m, _IN_PROGRESS)
