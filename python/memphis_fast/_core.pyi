"""``memphis_fast._core``: the Rust core (pyo3 binding of the ``memphis-proto`` crate).

This stub is the documentation of the boundary between Python and Rust; it is checked against
the built module with ``python -m mypy.stubtest memphis_fast._core``.

The core never does I/O and never blocks. The asyncio protocol (``_protocol.py``) lends the
socket the core's receive buffer (``memoryview(core.prepare_recv())``), calls :meth:`Core.feed`
with the number of bytes read, and gets back a bit set of ``F_*`` flags saying what is ready to
collect with the ``take_*`` methods. Everything the core encodes goes to one write buffer that
:meth:`Core.take_out` hands to the transport once per event-loop tick.

Errors: codec and state-machine errors are raised as :mod:`memphis_fast.exceptions` classes
(``MemphisProtocolError`` for bad bytes from the server, ``MemphisPayloadTooLargeError`` with
``size``/``limit`` attributes, ``MemphisConnectError`` when the disconnected-buffer is full,
``MemphisConnectionClosedError`` after :meth:`Core.close`, ``MemphisError`` for an invalid
subject or header); ``TypeError`` for a payload that is not bytes-like.
"""

from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal, Self, TypeAlias, final

__all__ = [
    "VERSION",
    "PARTITION_KEY_SEED",
    "DEFAULT_PENDING_LIMIT",
    "F_MSGS",
    "F_OUTCOMES",
    "F_FAILURES",
    "F_PROGRESS",
    "F_EVENTS",
    "F_WRITE",
    "F_TIMER",
    "EV_INFO",
    "EV_ERR",
    "EV_PONG",
    "EV_BATCH",
    "EV_PULL_END",
    "ACK",
    "NAK",
    "NAK_DELAY",
    "IN_PROGRESS",
    "TERM",
    "STATE_DISCONNECTED",
    "STATE_HANDSHAKING",
    "STATE_CONNECTED",
    "STATE_CLOSED",
    "PULL_GRACE_MS",
    "HEARTBEAT_GRACE_MS",
    "PULL_DEFAULT_WAIT_MS",
    "DEFAULT_MAX_INFLIGHT",
    "DEFAULT_MAX_INFLIGHT_BYTES",
    "Core",
    "Msg",
    "Partitioner",
    "ProduceResult",
    "OutcomeKind",
    "OutcomeReason",
    "PullEnd",
    "murmur3",
    "encode_header_lines",
    "parse_header_block",
    "parse_ack_subject",
    "payload_kinds",
    "PAYLOADS_BYTES",
    "PAYLOADS_OTHER",
    "PAYLOADS_NONE",
]

VERSION: Final[str]
"""The crate version (``memphis_fast.__version__``)."""

PARTITION_KEY_SEED: Final = 31
"""Seed of the partition-key hash. Must match memphis-py (``Memphis.SEED = 31``) and
memphis.go; pinned by tests on both sides."""

DEFAULT_PENDING_LIMIT: Final[int]
"""Default bytes of publishes/acks kept while disconnected (8 MiB)."""

# Flags returned by feed/feed_bytes/start_session/session_ready/disconnected/close/sweep.
F_MSGS: Final = 1
"""Messages are ready: :meth:`Core.take_msgs`."""
F_OUTCOMES: Final = 2
"""Outcomes of awaited publishes are ready: :meth:`Core.take_outcomes`."""
F_FAILURES: Final = 4
"""Failures of unawaited publishes are ready: :meth:`Core.take_failures`."""
F_PROGRESS: Final = 8
"""Some publish finished (a producer window may have room)."""
F_EVENTS: Final = 16
"""Control events are ready: :meth:`Core.take_events`."""
F_WRITE: Final = 32
"""Bytes are waiting in the write buffer: :meth:`Core.take_out`."""
F_TIMER: Final = 64
"""A deadline earlier than the scheduled sweep may exist (a retry was scheduled):
re-arm the sweep timer from :meth:`Core.next_deadline`."""

# Event kinds of take_events().
EV_INFO: Final = 1
"""``(EV_INFO, json: bytes)``: the server's INFO."""
EV_ERR: Final = 2
"""``(EV_ERR, text: str)``: ``-ERR`` from the server, without quotes."""
EV_PONG: Final = 3
"""``(EV_PONG, rtt_us: int | None)``: a PONG answered one of our PINGs."""
EV_BATCH: Final = 4
"""``(EV_BATCH, batch_id: int)``: every message of a batch finished; :meth:`Core.take_batch`."""
EV_PULL_END: Final = 5
"""``(EV_PULL_END, PullEnd)``: a pull request ended short (status 404/408/409, local expiry,
lost heartbeats; code 0 on a lost connection)."""

# Acknowledgement kinds (Core.ack, Core.ack_many).
ACK: Final = 0
"""``+ACK``: processed."""
NAK: Final = 1
"""``-NAK``: redeliver now."""
NAK_DELAY: Final = 2
"""``-NAK {"delay": ns}``: redeliver after ``delay_ns``."""
IN_PROGRESS: Final = 3
"""``+WPI``: still working on it (restarts the ack wait)."""
TERM: Final = 4
"""``+TERM``: never redeliver."""

# Core.state.
STATE_DISCONNECTED: Final = 0
STATE_HANDSHAKING: Final = 1
STATE_CONNECTED: Final = 2
STATE_CLOSED: Final = 3

# Rules that both languages need (defined once, in Rust).
PULL_GRACE_MS: Final[int]
"""A pull without an answer counts as lost this long after its ``expires`` (2000)."""
HEARTBEAT_GRACE_MS: Final[int]
"""A pull with idle heartbeats counts as lost after two heartbeats plus this (1000)."""
PULL_DEFAULT_WAIT_MS: Final[int]
"""How long a pull without ``expires`` may wait before it counts as lost (30000)."""
DEFAULT_MAX_INFLIGHT: Final[int]
"""Default window of a producer's unacknowledged nonblocking messages (4096)."""
DEFAULT_MAX_INFLIGHT_BYTES: Final[int]
"""Default byte window of a producer's unacknowledged nonblocking messages (32 MiB)."""

_Buffer: TypeAlias = bytes | bytearray | memoryview
_Headers: TypeAlias = dict[str, Any] | Iterable[tuple[Any, Any]] | bytes
_Metadata: TypeAlias = tuple[str, str, int, int, int, int, int, str | None]
"""``(stream, consumer, delivered, stream_seq, consumer_seq, timestamp_ns, pending, domain)``."""

@final
class Msg:
    """One delivered message. Created only by the core. Subject, reply and header block
    share one allocation; the payload is a ``bytes`` object created once."""

    @property
    def subject(self) -> str:
        """The subject the message was published to."""
    @property
    def reply(self) -> str | None:
        """The reply subject (a ``$JS.ACK...`` subject for a JetStream delivery), or ``None``."""
    @property
    def data(self) -> bytes:
        """The payload (created on first access, then the same object every time)."""
    def data_bytearray(self) -> bytearray:
        """The payload as a new ``bytearray`` (memphis-py's ``get_data()``), copied once."""
    @property
    def sid(self) -> int:
        """The subscription id it arrived on."""
    @property
    def headers(self) -> dict[str, str] | None:
        """Headers as ``{name: value}``; for a repeated name the last value wins (as in
        nats-py). ``None`` when the message has no header block."""
    @property
    def headers_multi(self) -> dict[str, list[str]] | None:
        """Headers as ``{name: [values...]}``, every value kept in order."""
    @property
    def header_block_bytes(self) -> bytes | None:
        """The raw header block, status line included, or ``None``."""
    @property
    def status(self) -> int:
        """Status code of the header block (100, 404, 408, 409, 503...), 0 when none."""
    @property
    def description(self) -> str:
        """Description of the status line (``""`` when none)."""
    @property
    def is_js(self) -> bool:
        """True for a JetStream delivery (its reply subject starts with ``$JS.ACK.``)."""
    def metadata(self) -> _Metadata | None:
        """JetStream metadata from the reply subject (9-, 11- and 12-token forms):
        ``(stream, consumer, delivered, stream_seq, consumer_seq, timestamp_ns, pending,
        domain)``, or ``None`` for a message that is not a JetStream delivery."""
    @property
    def stream_seq(self) -> int | None:
        """Stream sequence of a JetStream delivery."""
    @property
    def delivered(self) -> int | None:
        """Delivery count of a JetStream delivery (1 the first time)."""
    @property
    def timestamp_ns(self) -> int | None:
        """When the stream stored the message, in ns since the epoch."""
    @property
    def stream(self) -> str | None:
        """The stream of a JetStream delivery."""
    def __len__(self) -> int:
        """Payload length."""

@final
class Core:
    """One NATS connection's state across TCP sessions: receive buffer, write buffer,
    subscriptions, the muxed inbox (``<inbox_prefix>.*``, sid 1), in-flight JetStream
    publishes, and the buffer for what is issued while disconnected.

    Lifecycle: ``start_session(connect_json)`` (queues CONNECT, PING and every
    subscription) -> the server's PONG -> ``session_ready()`` (re-sends msg-id publishes that
    were in flight, then everything buffered) -> ... -> ``disconnected()`` -> ... ->
    ``close()``. ``state``: 0 disconnected, 1 handshaking, 2 connected, 3 closed.

    Supports the buffer protocol: the exported buffer is the writable tail of the receive
    buffer, sized by :meth:`prepare_recv`. The buffer is never moved while an export is alive.
    """

    def __new__(cls, inbox_prefix: str, pending_limit: int = ...) -> Self:
        """``inbox_prefix``: this connection's unique inbox prefix (``_INBOX.<id>``).
        ``pending_limit``: bytes kept while disconnected (default 8 MiB)."""
    def __buffer__(self, flags: int, /) -> memoryview:
        """The writable tail of the receive buffer (use ``memoryview(core.prepare_recv())``)."""
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __len__(self) -> int:
        """Writable bytes in the receive buffer's tail."""

    # -- reading ---------------------------------------------------------------------------
    def prepare_recv(self) -> Self:
        """Make room in the receive buffer (compact, grow up to the limit derived from the
        server's ``max_payload``) and return the core itself, whose buffer export is the
        writable tail. Nothing moves while a previous export is alive."""
    def feed(self, n: int) -> int:
        """``n`` bytes were written into the exported tail: parse and dispatch every complete
        operation. Returns the ``F_*`` flags. Raises ``MemphisProtocolError`` on bytes that
        are not NATS protocol or exceed the limits (the connection must then be dropped)."""
    def feed_bytes(self, data: _Buffer) -> int:
        """Copy ``data`` in and process it (tests, and transports that hand out bytes)."""
    def take_msgs(self) -> list[tuple[int, list[Msg]]]:
        """``[(sid, [Msg, ...]), ...]`` in order of arrival, grouped per run of one sid.
        Replies on the muxed inbox arrive under :attr:`mux_sid`."""
    def take_outcomes(self) -> list[tuple[int, ProduceResult]]:
        """``(publish id, result)`` of awaited publishes (``waiter=True``)."""
    def take_failures(self) -> list[tuple[int, ProduceResult]]:
        """``(group, result)`` of unawaited publishes that were not stored. Stored outcomes
        of unawaited publishes are only counted, never reported."""
    def take_events(self) -> list[tuple[int, Any]]:
        """Control events ``(EV_*, value)``; see the ``EV_*`` constants for the values."""
    def take_batch(self, batch_id: int) -> list[ProduceResult] | None:
        """The results of a finished batch in message order, or ``None`` if the batch is
        unknown or not finished."""
    def take_out(self) -> bytes | None:
        """The bytes to write, or ``None``; the core considers them handed to the transport
        (publishes sent from now on can no longer be silently re-sent)."""

    # -- lifecycle -------------------------------------------------------------------------
    def start_session(self, connect_json: str | _Buffer) -> int:
        """A transport is up and INFO was handled: queue CONNECT, PING and every subscription."""
    def session_ready(self) -> int:
        """The server answered the handshake PING: re-send in-flight msg-id publishes, then
        everything buffered while disconnected."""
    def disconnected(self) -> int:
        """The transport is gone. Sent publishes without a msg-id end as ``K_UNKNOWN``; with
        one they are kept for re-sending; unsent bytes are kept for the next session."""
    def close(self) -> int:
        """Close for good: everything in flight ends (``K_UNKNOWN`` if it had left,
        ``K_NOT_SENT`` otherwise)."""
    def sweep(self) -> int:
        """Finish publishes whose ack wait expired (``K_UNKNOWN``)."""
    def next_deadline(self) -> float | None:
        """Seconds until the earliest deadline (an ack wait, a pull's expiry or heartbeat
        check), or ``None`` when nothing waits."""
    @property
    def state(self) -> int:
        """0 disconnected, 1 handshaking, 2 connected, 3 closed."""
    @property
    def max_payload(self) -> int:
        """The server's ``max_payload`` (from INFO): larger publishes are refused locally and
        larger incoming messages are a protocol error."""
    @max_payload.setter
    def max_payload(self, n: int) -> None: ...
    @property
    def retry_unavailable(self) -> bool:
        """Retry publishes answered "unavailable" (503 no responders, JetStream cluster not
        available: a stream leader is being elected) until their ack wait runs out, re-sending
        the same frame with backoff (25 ms doubling, at most 500 ms). Set for clustered
        servers; frames are then kept for every publish."""
    @retry_unavailable.setter
    def retry_unavailable(self, on: bool) -> None: ...
    @property
    def inbox_prefix(self) -> str:
        """``<inbox_prefix>.``; publish-ack inboxes are ``<prefix><id>`` (all digits)."""
    @property
    def mux_sid(self) -> int:
        """The sid of the muxed inbox subscription (request replies, publish acks)."""
    @property
    def inflight(self) -> int:
        """JetStream publishes in flight on the whole connection."""
    @property
    def out_len(self) -> int:
        """Bytes waiting in the write buffer."""
    @property
    def pings_outstanding(self) -> int:
        """PINGs sent and not yet answered (keepalive)."""

    # -- operations ------------------------------------------------------------------------
    def subscribe(self, subject: str, queue: str | None = None) -> int:
        """Subscribe (recorded while disconnected, re-sent with every session); returns the sid."""
    def unsubscribe(self, sid: int, max: int | None = None) -> None:
        """Unsubscribe now, or after ``max`` messages in total."""
    def is_subscribed(self, sid: int) -> bool: ...
    def pull_subscribe(self) -> int:
        """An inbox for JetStream pull requests; returns its sid. Status messages on it become
        ``EV_PULL_END`` events."""
    def pull(
        self,
        sid: int,
        api_subject: str,
        batch: int,
        max_bytes: int = 0,
        expires_ms: int = 0,
        heartbeat_ms: int = 0,
        no_wait: bool = False,
        ahead_of_acks: bool = False,
    ) -> int:
        """Send a pull request (``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>``) on pull
        subscription ``sid``; returns its token. ``ahead_of_acks`` (a fetch loop's pull):
        written in front of the positive acks written last, not after them."""
    def hold_acks(self) -> int:
        """Keep the positive acks a pull just went in front of (``ahead_of_acks``) out of the
        next write until :meth:`release_acks`; returns the bytes held (0: nothing held)."""
    def release_acks(self) -> bool:
        """Put held acks back in the write buffer; returns whether there were any."""
    @property
    def held_acks(self) -> int:
        """Bytes of acks held by :meth:`hold_acks`."""
    def pull_outstanding(self, sid: int) -> tuple[int, int]:
        """``(pulls, messages)`` asked for on ``sid`` and not yet delivered."""
    def ping(self) -> bool:
        """Queue a PING; False when not connected."""
    def publish(
        self,
        subject: str,
        payload: _Buffer,
        reply: str | None = None,
        headers: _Headers | None = None,
    ) -> None:
        """Core NATS publish. ``headers``: a dict (a list value repeats the key), a list of
        pairs, or encoded ``key: value\\r\\n`` lines. Buffered while disconnected."""
    def js_publish(
        self,
        subject: str,
        payload: _Buffer,
        group: int,
        tag: int,
        ack_wait_ms: int,
        waiter: bool,
        header_lines: bytes | None = None,
        headers: _Headers | None = None,
        msg_id: str | None = None,
        max_inflight: int = 0,
        max_inflight_bytes: int = 0,
    ) -> int:
        """JetStream publish with its reply on the muxed inbox; returns its id (from 1).

        ``group``: the producer's window; ``tag``: returned in the outcome; ``waiter``: the
        outcome goes to :meth:`take_outcomes` (else only failures, to :meth:`take_failures`);
        ``header_lines``: the producer's constant lines (:func:`encode_header_lines`);
        ``headers``: per-message headers; ``msg_id``: sent as both ``msg-id`` and
        ``Nats-Msg-Id`` and makes the publish re-sendable after a reconnect.
        ``max_inflight``/``max_inflight_bytes`` (when not 0): if the group already has that
        much in flight, nothing is sent and 0 is returned."""
    def js_publish_batch(
        self,
        subject: str,
        payloads: Iterable[_Buffer],
        group: int,
        ack_wait_ms: int,
        header_lines: bytes | None = None,
        msg_ids: Iterable[str | None] | None = None,
        base_index: int = 0,
        indexes: list[int] | None = None,
    ) -> tuple[int, list[ProduceResult | None]]:
        """Publish many messages in one call and one write: ``(batch_id, results)`` with a
        :class:`ProduceResult` (kind ``"rejected"``) for each message refused before sending and
        ``None`` for the others, whose results arrive as one ``EV_BATCH`` event
        (:meth:`take_batch`). ``batch_id`` is 0 when nothing was sent. ``indexes`` gives the
        index reported for each message (default ``base_index + position``)."""
    def discard_batch(self, batch_id: int) -> None:
        """Forget a batch whose caller went away; late outcomes are dropped."""
    def ack(self, msg: Msg, kind: int = 0, delay_ns: int = 0) -> bool:
        """Acknowledge a JetStream message through its reply subject (``ACK``, ``NAK``,
        ``NAK_DELAY`` with ``delay_ns``, ``IN_PROGRESS``, ``TERM``). ``ValueError`` if the
        message has no reply subject. True once the encoded output reached 32 KiB (a few hundred
        acks): write it now rather than at the end of the tick."""
    def ack_many(self, msgs: Iterable[Msg], kind: int = 0, delay_ns: int = 0) -> int:
        """Acknowledge many messages alike; those without a reply are skipped. Returns how
        many were acknowledged."""
    def ack_reply(self, reply: str, kind: int = 0, delay_ns: int = 0) -> None:
        """Acknowledge through a reply subject given as text."""

    # -- counters --------------------------------------------------------------------------
    def group_inflight(self, group: int) -> tuple[int, int]:
        """``(messages, bytes)`` in flight for a group."""
    def group_stats(self, group: int) -> dict[str, int]:
        """``{inflight, inflight_bytes, published, acked, failed, retried}`` of a group."""
    def new_group(self, label: str | None = None, report_stored: bool = False) -> int:
        """A new group (a producer's window and counters); ``label`` (the station) is copied
        into the ``station`` of the group's results. With ``report_stored``, stored outcomes
        of its unawaited publishes are reported by :meth:`take_failures` too."""
    def drop_group(self, group: int) -> None:
        """Forget a group's counters and label once nothing of it is in flight."""
    def stats(self) -> dict[str, int]:
        """Connection counters: ``msgs_in``, ``bytes_in``, ``msgs_out``, ``bytes_out``,
        ``reconnects``, ``pings_sent``, ``pongs``, ``rtt_us``, ``late_acks``,
        ``dropped_msgs``, ``orphans_nakked`` (JetStream deliveries to a gone subscription, sent
        back with ``-NAK``), the in-flight totals (``inflight``, ``inflight_bytes``,
        ``published``, ``acked``, ``failed``, ``retried``), ``pending_bytes``,
        ``recv_buffer``."""

@final
class OutcomeKind:
    """What became of a message. Equal to (and hashed like) its name, so
    ``result.kind == "stored"`` holds."""

    STORED: OutcomeKind
    NOT_STORED: OutcomeKind
    UNKNOWN: OutcomeKind
    NOT_SENT: OutcomeKind
    REJECTED: OutcomeKind
    @property
    def value(self) -> str:
        """``"stored"``, ``"not_stored"``, ``"unknown"``, ``"not_sent"`` or ``"rejected"``."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

@final
class OutcomeReason:
    """Why a message ended as it did. Equal to (and hashed like) its name."""

    NONE: OutcomeReason
    """Stored."""
    ACK_TIMEOUT: OutcomeReason
    """Unknown: no acknowledgement within the ack wait."""
    CONNECTION_LOST: OutcomeReason
    """Unknown: the connection dropped after the message was written to it."""
    CLOSED_BEFORE_SENDING: OutcomeReason
    """Not sent: the connection was closed while the message was buffered."""
    NO_RESPONDERS: OutcomeReason
    """Not stored: no stream listens on the subject (503 no responders)."""
    JETSTREAM_ERROR: OutcomeReason
    """Not stored: JetStream refused it (``code``, ``err_code``, ``error``)."""
    REJECTED: OutcomeReason
    """Refused before sending."""
    EXPIRED_BEFORE_SENDING: OutcomeReason
    """Not sent: its ack wait ran out while the connection was down; it was taken out of the
    buffer and will never be sent (safe to retry)."""
    DUPLICATE_IN_PROCESS: OutcomeReason
    """Unknown: a clustered stream answered that a store of this msg_id was still in process
    and never confirmed it within the ack wait."""
    @property
    def value(self) -> str: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

@final
class ProduceResult:
    """The outcome of one produced message (awaited ``produce``, ``produce_batch``, and the
    failures of nonblocking produces)."""

    def __new__(
        cls,
        index: int,
        msg_id: object,
        stored: bool,
        kind: OutcomeKind | Literal["stored", "not_stored", "unknown", "not_sent", "rejected"],
        stream: str | None = None,
        sequence: int | None = None,
        duplicate: bool = False,
        error: str | None = None,
        code: int = 0,
        err_code: int = 0,
        reason: OutcomeReason | None = None,
        station: str | None = None,
    ) -> ProduceResult: ...
    @property
    def index(self) -> int:
        """The producer's count of messages before this one."""
    @property
    def msg_id(self) -> Any:
        """The message's ``msg_id`` (``None`` without one)."""
    @property
    def stored(self) -> bool:
        """True when the broker stored the message."""
    @property
    def kind(self) -> OutcomeKind:
        """What became of it (``REJECTED``: refused before sending: schema, size, msg_id)."""
    @property
    def reason(self) -> OutcomeReason:
        """Why."""
    @property
    def stream(self) -> str | None:
        """The stream (partition) that stored it."""
    @property
    def sequence(self) -> int | None:
        """Its sequence in that stream."""
    @property
    def duplicate(self) -> bool:
        """True when the broker recognised its msg_id as a duplicate (not stored again)."""
    @property
    def error(self) -> str | None:
        """Why it was not stored (or why its fate is unknown), as text."""
    @property
    def code(self) -> int:
        """The status or JetStream API error code (503 no responders), 0 if none."""
    @property
    def err_code(self) -> int:
        """The JetStream error code (0 if none)."""
    @property
    def station(self) -> str | None:
        """The producer's station."""
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...

@final
class PullEnd:
    """A pull request that ended before delivering everything it asked for. Its status is
    interpreted once, in Rust (docs/protocol.md §8.2)."""

    @property
    def sid(self) -> int: ...
    @property
    def token(self) -> int: ...
    @property
    def code(self) -> int:
        """The status code (404, 408, 409, ...; 0 when it ended without one)."""
    @property
    def description(self) -> str: ...
    @property
    def undelivered(self) -> int:
        """Messages it asked for that will not come."""
    @property
    def asked(self) -> int:
        """Messages it asked for."""
    @property
    def empty(self) -> bool:
        """It expired (404/408) having delivered nothing."""
    @property
    def expired(self) -> bool:
        """It expired (404/408), possibly after delivering part of what it asked for."""
    @property
    def refused(self) -> bool:
        """The consumer is gone or refuses pulls (409 consumer deleted or push based, other
        statuses): worth reporting."""
    @property
    def lost(self) -> bool:
        """Ended without a status (connection dropped, heartbeats stopped) or a transient
        409: pull again."""

@final
class Partitioner:
    """Partition routing over a station's partition list: round-robin per object (starting
    with the first partition) and murmur3 key hashing bit-exact with memphis-py."""

    def __new__(cls, partitions: Sequence[int]) -> Self: ...
    @property
    def partitions(self) -> list[int]: ...
    def __len__(self) -> int: ...
    def next(self) -> int:
        """The next partition in round-robin order (``ValueError`` for an empty list)."""
    def for_key(self, key: str | bytes) -> int:
        """``partitions[murmur3(key, 31) % len(partitions)]`` (``ValueError`` when empty)."""

def murmur3(key: str | bytes, seed: int = ...) -> int:
    """MurmurHash3 x86 32-bit, unsigned: ``mmh3.hash(key, seed, signed=False)``."""

def encode_header_lines(headers: _Headers | None) -> bytes:
    """Validated ``key: value\\r\\n`` lines (no version line, no blank line) from a dict (a
    list value repeats the key) or a list of pairs. ``MemphisError`` for a key that is not
    printable ASCII without ``:``/space, or a value with CR/LF. ``None`` gives ``b""``."""

def parse_header_block(block: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    """``(status_code, description, [(key, value), ...])`` of a header block."""

def parse_ack_subject(reply: str) -> _Metadata | None:
    """JetStream metadata of a ``$JS.ACK`` subject (see :meth:`Msg.metadata`)."""

PAYLOADS_BYTES: Final = 0
PAYLOADS_OTHER: Final = 1
PAYLOADS_NONE: Final = 2

def payload_kinds(messages: Sequence[object]) -> int:
    """One pass over ``produce_batch``'s messages: ``PAYLOADS_NONE`` if one is ``None``, else
    ``PAYLOADS_OTHER`` if one is not exactly ``bytes``/``bytearray``/``memoryview``, else
    ``PAYLOADS_BYTES``."""
