"""The raw-socket reference client: the ceiling the other clients are measured against.

A minimal NATS client on one blocking socket that does almost no work: CONNECT, then ``HPUB``
frames (the two Memphis headers built once, a reply subject per message) sent in chunks, and
PubAck replies counted by scanning the received bytes for ``"seq":`` up to the last complete reply;
pulls on the consumer group's durable with one ``PUB <reply> 0`` ack per delivered message,
written together with the next pull. No asyncio, no per-message objects, no futures.
Whatever rate it reaches is (almost) what nats-server allows on this machine.

Honest where it matters: every message carries the same headers as a Memphis producer's, goes
to the same subject (``<station>$<p>.final``) of the same memphis-storage stream, asks for an
acknowledgement and is counted only when the broker stored it; the consumer acks every message
explicitly. ``memphis-fast bench`` then checks the stream / consumer state as for any client.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from typing import Any

try:
    from . import runner_common as rc
except ImportError:  # run by path (see runner_common)
    import runner_common as rc  # type: ignore[no-redef]

CLIENT = "raw"
ACK_INBOX = b"_INBOX.rawack"
CHUNK = 256  # messages per write when pipelining
WINDOW = 4096  # messages in flight when pipelining (memphis-fast's default window)
_SEQ = b'"seq":'
_ERR = b'"error"'
_NO_RESPONDERS = b"NATS/1.0 503"


class RawError(RuntimeError):
    pass


class RawClient:
    """Just enough NATS for the benchmark, on a blocking socket."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        user: str = "",
        password: str = "",
        token: str = "",
        timeout: float = 10.0,
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.buf = b""
        # recv_into one buffer: sock.recv(1 MiB) would allocate (mmap) 1 MiB per call.
        self._rbuf = bytearray(1 << 20)
        self._rview = memoryview(self._rbuf)
        line = self._read_line()
        if not line.startswith(b"INFO "):
            raise RawError(f"unexpected greeting {line[:80]!r}")
        opts: dict[str, Any] = {
            "verbose": False,
            "pedantic": False,
            "headers": True,
            "no_responders": True,
            "protocol": 1,
            "lang": "raw",
            "version": "0",
            "name": "bench-raw",
        }
        if token:
            opts["auth_token"] = token
        elif user:
            opts["user"] = user
            opts["pass"] = password
        self.sock.sendall(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        while True:
            line = self._read_line()
            if line == b"PONG":
                break
            if line.startswith(b"-ERR"):
                raise RawError(line.decode(errors="replace"))
        # Plain blocking mode from here: with a timeout, every send/recv polls first.
        self.sock.settimeout(None)

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise RawError("connection closed by the server")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def recv(self) -> bytes:
        n = self.sock.recv_into(self._rbuf)
        if not n:
            raise RawError("connection closed by the server")
        return bytes(self._rview[:n])

    def ping(self) -> None:
        """A round trip: everything sent before has been processed by the server."""
        self.sock.sendall(b"PING\r\n")
        tail = self.buf
        while b"PONG\r\n" not in tail:
            tail = tail[-8:] + self.recv()
        self.buf = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Frames:
    """HPUB frames of one payload, round-robin over subjects. Every message gets a reply
    subject of its own (``_INBOX.rawack.<n>``), as real clients' do: the server then matches
    each PubAck's subject like theirs (a fixed reply subject stays in nats-server's subject
    cache and costs it less per message; ``fixed_reply`` measures that)."""

    def __init__(self, subjects: list[str], headers: dict[str, str], payload: bytes, *, fixed_reply: bool = False) -> None:
        hdr = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
        self.tail = b" %d %d\r\n" % (len(hdr), len(hdr) + len(payload)) + hdr + payload + b"\r\n"
        self.heads = [b"HPUB %s %s." % (s.encode(), ACK_INBOX) for s in subjects]
        self.fixed = fixed_reply
        self._fixed_chunks: dict[tuple[int, int], bytes] = {}

    def chunk(self, start: int, k: int) -> bytes:
        """Messages ``start`` .. ``start + k - 1``."""
        heads, tail, n = self.heads, self.tail, len(self.heads)
        if self.fixed:
            key = (start % n, k)
            data = self._fixed_chunks.get(key)
            if data is None:
                data = self._fixed_chunks[key] = b"".join([heads[i % n] + b"0" + tail for i in range(start, start + k)])
            return data
        return b"".join([heads[i % n] + b"%d" % i + tail for i in range(start, start + k)])


def _subjects(args: argparse.Namespace) -> list[str]:
    return [f"{s}.final" for s in rc.stream_names(args.station, args.partitions)]


def _connect(args: argparse.Namespace, host: str | None = None) -> RawClient:
    if args.token:
        return RawClient(host or args.host, args.port, token=args.token)
    return RawClient(host or args.host, args.port, user=rc.nats_user(args), password=args.password)


class AckCounter:
    """Counts PubAck replies in the byte stream without parsing each frame."""

    __slots__ = ("client", "pending", "acked", "errors")

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.pending = b""
        self.acked = 0
        self.errors = 0

    def read(self) -> None:
        data = self.client.recv()
        buf = self.pending + data if self.pending else data
        end = buf.rfind(b"}\r\n")  # the end of the last complete PubAck
        if end < 0:
            self.pending = buf
        else:
            region = buf[: end + 3]
            self.pending = buf[end + 3 :]
            self.acked += region.count(_SEQ)
            self.errors += region.count(_ERR)
        if b"-ERR" in data:
            raise RawError(data[data.index(b"-ERR") :].split(b"\r\n")[0].decode(errors="replace"))
        if _NO_RESPONDERS in data:
            self.errors += data.count(_NO_RESPONDERS)
        if b"PING\r\n" in data:
            self.client.sock.sendall(b"PONG\r\n")

    @property
    def done(self) -> int:
        return self.acked + self.errors


def publish_pipelined(client: RawClient, frames: Frames, n: int, window: int = WINDOW, chunk: int = CHUNK) -> AckCounter:
    """Send ``n`` messages keeping at most ``window`` unacknowledged, ``chunk`` per write."""
    client.sock.sendall(b"SUB " + ACK_INBOX + b".* 1\r\n")
    counter = AckCounter(client)
    sent = 0
    while counter.done < n:
        while sent < n and sent - counter.done + chunk <= window:
            k = min(chunk, n - sent)
            client.sock.sendall(frames.chunk(sent, k))
            sent += k
        counter.read()
    return counter


def preload(
    host: str,
    port: int,
    station: str,
    partitions: int,
    n: int,
    payload: bytes,
    *,
    user: str = "",
    password: str = "",
    token: str = "",
) -> int:
    """Fill a station's partitions round-robin (setup of the consume paths); returns the stored count."""
    client = RawClient(host, port, user=user, password=password, token=token)
    try:
        subjects = [f"{s}.final" for s in rc.stream_names(station, partitions)]
        counter = publish_pipelined(client, Frames(subjects, rc.memphis_headers(), payload), n)
        if counter.errors:
            raise RawError(f"preload: {counter.errors} of {n} messages were not stored")
        return counter.acked
    finally:
        client.close()


# -- paths ------------------------------------------------------------------------------------
async def produce_sync(args: argparse.Namespace) -> dict[str, Any]:
    frames = Frames(_subjects(args), rc.memphis_headers(), rc.make_payload(args.payload), fixed_reply=args.variant == "fixed-reply")
    client = _connect(args)
    client.sock.sendall(b"SUB " + ACK_INBOX + b".* 1\r\n")
    client.ping()
    counter = AckCounter(client)
    n = args.messages
    lat = [0] * n
    chunk = frames.chunk
    send = client.sock.sendall
    clock = time.perf_counter_ns
    meter = rc.Meter(args.nats_pid)
    meter.start()
    for i in range(n):
        data = chunk(i, 1)
        t0 = clock()
        send(data)
        while counter.done <= i:
            counter.read()
        lat[i] = clock() - t0
    meter.stop()
    client.close()
    ok = counter.errors == 0 and counter.acked == n
    return rc.result(
        args, CLIENT, messages=n, meter=meter, latencies_ns=lat, ok=ok, acked=counter.acked,
        failed=counter.errors, error=None if ok else f"{counter.errors} PubAck errors",
    )


async def produce_nonblocking(args: argparse.Namespace) -> dict[str, Any]:
    frames = Frames(_subjects(args), rc.memphis_headers(), rc.make_payload(args.payload), fixed_reply=args.variant == "fixed-reply")
    client = _connect(args)
    n = args.messages
    meter = rc.Meter(args.nats_pid)
    meter.start()
    counter = publish_pipelined(client, frames, n)
    meter.stop()
    client.close()
    ok = counter.errors == 0 and counter.acked == n
    return rc.result(
        args, CLIENT, messages=n, meter=meter, ok=ok, acked=counter.acked, failed=counter.errors,
        error=None if ok else f"{counter.errors} PubAck errors",
        extra={"window": WINDOW, "chunk": CHUNK, "fixed_reply": frames.fixed},
    )


def _parse_deliveries(buf: bytes) -> tuple[list[tuple[int, bytes | None, bytes]], int]:
    """Complete ``HMSG``/``MSG`` frames in ``buf``: ``(sid, reply, head)``, and the bytes used.
    ``head`` is the start of the headers (for the status line of 408/404/409 replies)."""
    out: list[tuple[int, bytes | None, bytes]] = []
    pos = 0
    size = len(buf)
    find = buf.find
    while pos < size:
        eol = find(b"\r\n", pos)
        if eol < 0:
            break
        line = buf[pos:eol]
        if line[:1] == b"H" or line[:1] == b"M":
            parts = line.split()
            total = int(parts[-1])
            end = eol + 2 + total + 2
            if end > size:
                break
            # HMSG subj sid [reply] hlen tlen / MSG subj sid [reply] len
            n_fixed = 5 if parts[0] == b"HMSG" else 4
            reply = parts[3] if len(parts) == n_fixed + 1 else None
            out.append((int(parts[2]), reply, buf[eol + 2 : eol + 2 + min(total, 16)]))
            pos = end
        elif line == b"PING":
            out.append((-1, None, b""))
            pos = eol + 2
        elif line.startswith(b"-ERR"):
            raise RawError(line.decode(errors="replace"))
        else:  # PONG, +OK, INFO
            pos = eol + 2
    return out, pos


def _pull_frame(api: bytes, inbox: bytes, batch: int, expires_ns: int) -> bytes:
    body = b'{"batch":%d,"expires":%d}' % (batch, expires_ns)
    return b"PUB %s %s %d\r\n%s\r\n" % (api, inbox, len(body), body)


def receive_batch(client: RawClient, pending: bytes, want: int, acks: list[bytes]) -> tuple[int, int, bytes]:
    """Read the deliveries of one pull until ``want`` arrived or a status (408/404/409) ended
    it, appending an ack per message to ``acks``; returns ``(got, statuses, unparsed bytes)``."""
    got = statuses = 0
    while got < want:
        data = client.recv()
        buf = pending + data if pending else data
        frames, used = _parse_deliveries(buf)
        pending = buf[used:]
        for sid, reply, head in frames:
            if sid < 0:
                client.sock.sendall(b"PONG\r\n")
            elif reply is not None:
                acks.append(b"PUB %s 0\r\n\r\n" % reply)
                got += 1
            elif head.startswith(b"NATS/1.0 "):
                statuses += 1
                want = got
    return got, statuses, pending


async def consume_ack(args: argparse.Namespace) -> dict[str, Any]:
    durable = rc.internal_name(rc.CONSUMER_GROUP)
    streams = rc.stream_names(args.station, args.partitions)
    client = _connect(args)
    batch = args.batch
    pulls: list[bytes] = []
    setup = b""
    for sid, stream in enumerate(streams, start=1):
        inbox = b"_INBOX.rawpull.%d" % sid
        setup += b"SUB %s %d\r\n" % (inbox, sid)
        api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}".encode()
        pulls.append(_pull_frame(api, inbox, batch, 5_000_000_000))
    client.sock.sendall(setup)
    client.ping()
    n = args.messages
    outstanding = [0] * (len(streams) + 1)
    received = 0
    statuses = 0
    pending = b""
    meter = rc.Meter(args.nats_pid)
    if args.variant == "one-pull":
        # As a fetch() loop without prefetch: one pull at a time, the next one written after
        # the acks of the batch before it (the ceiling of that pattern on this broker).
        meter.start()
        acks: list[bytes] = []
        p = 0
        parts = len(streams)
        left = [n // parts + (1 if i < n % parts else 0) for i in range(parts)]
        while received < n:
            while left[p] == 0:
                p = (p + 1) % parts
            want = min(batch, left[p])
            pull = _pull_frame(
                f"$JS.API.CONSUMER.MSG.NEXT.{streams[p]}.{durable}".encode(), b"_INBOX.rawpull.%d" % (p + 1), want,
                5_000_000_000,
            )
            ack_bytes = b"".join(acks)
            client.sock.sendall(ack_bytes + pull)
            acks = []
            got, ended, pending = receive_batch(client, pending, want, acks)
            statuses += ended
            left[p] -= got
            received += got
            p = (p + 1) % parts
        client.sock.sendall(b"".join(acks))
        client.ping()
        meter.stop()
        client.close()
        return rc.result(args, CLIENT, messages=n, meter=meter, acked=received, extra={"status_replies": statuses})
    meter.start()
    out = [pulls[i] for i in range(len(streams)) for _ in range(2)]
    for sid in range(1, len(streams) + 1):
        outstanding[sid] = 2 * batch
    client.sock.sendall(b"".join(out))
    while received < n:
        data = client.recv()
        buf = pending + data if pending else data
        frames, used = _parse_deliveries(buf)
        pending = buf[used:]
        out = []
        for sid, reply, head in frames:
            if sid < 0:
                out.append(b"PONG\r\n")
            elif reply is not None:
                out.append(b"PUB %s 0\r\n\r\n" % reply)
                outstanding[sid] -= 1
                received += 1
            elif head.startswith(b"NATS/1.0 "):
                # 408/404/409: the pull ended early; assume all of it is gone and pull again.
                statuses += 1
                outstanding[sid] = max(0, outstanding[sid] - batch)
        for sid in range(1, len(streams) + 1):
            if outstanding[sid] <= batch:
                out.append(pulls[sid - 1])
                outstanding[sid] += batch
        client.sock.sendall(b"".join(out))
    client.ping()  # every ack has reached the server
    meter.stop()
    client.close()
    return rc.result(
        args, CLIENT, messages=n, meter=meter, acked=received, extra={"status_replies": statuses}
    )


async def latency(args: argparse.Namespace) -> dict[str, Any]:
    """One message in flight: HPUB, then wait for its delivery on the pull; ack; repeat."""
    durable = rc.internal_name(rc.CONSUMER_GROUP)
    stream = rc.stream_names(args.station, args.partitions)[0]
    payload = rc.make_payload(args.payload)
    pubs = Frames([f"{stream}.final"], rc.memphis_headers(), payload)
    client = _connect(args)
    inbox = b"_INBOX.rawpull.2"
    api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}".encode()
    pull = _pull_frame(api, inbox, 1, 30_000_000_000)
    client.sock.sendall(b"SUB " + ACK_INBOX + b".* 1\r\nSUB " + inbox + b" 2\r\n" + pull)
    client.ping()
    n = args.messages
    lat = [0] * n
    acked = 0
    pending = b""
    clock = time.perf_counter_ns
    meter = rc.Meter(args.nats_pid)
    meter.start()
    for i in range(n):
        frame = pubs.chunk(i, 1)
        t0 = clock()
        client.sock.sendall(frame)
        got = False
        while not got:
            data = client.recv()
            buf = pending + data if pending else data
            frames, used = _parse_deliveries(buf)
            pending = buf[used:]
            out = []
            for sid, reply, _head in frames:
                if sid == 2 and reply is not None:
                    lat[i] = clock() - t0
                    got = True
                    out.append(b"PUB %s 0\r\n\r\n" % reply)
                    out.append(pull)
                elif sid == 2:  # the pull expired (408): pull again
                    out.append(pull)
                elif sid == 1:
                    acked += 1
                elif sid < 0:
                    out.append(b"PONG\r\n")
            if out:
                client.sock.sendall(b"".join(out))
    while acked < n:
        data = client.recv()
        buf = pending + data if pending else data
        frames, used = _parse_deliveries(buf)
        pending = buf[used:]
        acked += sum(1 for sid, _, _ in frames if sid == 1)
    client.ping()
    meter.stop()
    client.close()
    return rc.result(args, CLIENT, messages=n, meter=meter, latencies_ns=lat, acked=acked)


async def connect(args: argparse.Namespace) -> dict[str, Any]:
    lat = []
    for _ in range(args.connects):
        t0 = time.perf_counter_ns()
        c = _connect(args, args.connect_host)
        lat.append(time.perf_counter_ns() - t0)
        c.close()
    return rc.result(args, CLIENT, latencies_ns=lat, extra={"connects": args.connects, "host": args.connect_host})


HANDLERS: dict[str, rc.Handler] = {
    "produce-sync": produce_sync,
    "produce-nonblocking": produce_nonblocking,
    # the reference of memphis-fast's produce_batch, run in its path (next to it in time)
    "produce-batch": produce_nonblocking,
    "consume-ack": consume_ack,
    "latency": latency,
    "connect": connect,
}

if __name__ == "__main__":
    raise SystemExit(rc.main(CLIENT, HANDLERS))
