"""Helpers for the client tests (imported as a plain module: tests/ is not a package)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from support import eventually, js_api, shutdown_memphis_py, stream_info  # noqa: F401  (re-exported)

from memphis_fast.testing.natspy import settle

R = 0  # memphis-py's timeout_retries: a lost reply must fail fast, not retry for 120 s


async def stream_count(nc: Any, stream: str) -> int:
    """Messages stored in a JetStream stream (a station partition: ``<station>$<p>``)."""
    info = await stream_info(nc, stream)
    return int(info["state"]["messages"])


async def stored_msg(nc: Any, stream: str, seq: int) -> tuple[bytes, dict[str, str]]:
    """Payload and headers of a stored message, read with nats-py (raw, no Memphis client)."""
    msg = await nc.jetstream().get_msg(stream, seq)
    return bytes(msg.data or b""), dict(msg.headers or {})


async def consumer_info(nc: Any, stream: str, durable: str) -> dict[str, Any]:
    info = await js_api(nc, f"CONSUMER.INFO.{stream}.{durable}")
    assert "error" not in info, info
    return info


def _all_threads_stopped(pid: int) -> bool:
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state not in ("T", "t"):
            return False
    return True


@contextlib.contextmanager
def paused(pid: int | None) -> Iterator[None]:
    """SIGSTOP a process (the broker's nats-server) for the block; SIGCONT afterwards.
    Returns only once every thread of it is stopped (the signal takes effect asynchronously,
    and a running thread could still answer a few messages)."""
    assert pid
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10
        while not _all_threads_stopped(pid):
            assert time.monotonic() < deadline, f"process {pid} did not stop"
            time.sleep(0.001)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


class TcpProxy:
    """A small asyncio TCP proxy: ``forward`` relays, ``reject`` accepts and closes at once;
    ``cut()`` drops every open link. ``accepted`` counts connections (reconnect attempts);
    ``sent`` holds every byte the clients wrote, in order (what reached the server)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.sent = bytearray()
        self.target = (target_host, target_port)
        self.mode = "forward"
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.cut()
        tasks, self._tasks = self._tasks, set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def cut(self) -> None:
        writers, self._writers = self._writers, set()
        for w in writers:
            w.transport.abort()
            w.close()

    async def _on_client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._relay(cr, cw)
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)

    async def _relay(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "reject":
            cw.transport.abort()
            cw.close()
            return
        try:
            sr, sw = await asyncio.open_connection(*self.target)
        except OSError:
            cw.transport.abort()
            cw.close()
            return
        self._writers |= {cw, sw}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    if r is cr:
                        self.sent += data
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                w.transport.abort()
                w.close()
                self._writers.discard(w)

        await asyncio.gather(pipe(cr, sw), pipe(sr, cw))


async def fetch_exactly(consumer: Any, n: int, *, ack: bool = True, **kw: Any) -> list[Any]:
    """Fetch until ``n`` messages arrived; never fetches once all are in (memphis-py's fetch
    on an empty partition waits 5 s)."""
    got: list[Any] = []
    for _ in range(20):
        if len(got) >= n:
            break
        for msg in await consumer.fetch(batch_size=n - len(got), **kw):
            got.append(msg)
            if ack:
                await msg.ack()
    assert len(got) == n, [bytes(m.get_data()) for m in got]
    return got


class Collector:
    """A consume() callback that records batches and errors."""

    def __init__(self, ack: bool = True) -> None:
        self.msgs: list[Any] = []
        self.errors: list[Any] = []
        self.calls = 0
        self.ack = ack

    async def __call__(self, msgs: list[Any], error: Any, context: Any) -> None:
        self.calls += 1
        if error is not None:
            self.errors.append(error)
        for m in msgs:
            self.msgs.append(m)
            if self.ack:
                await m.ack()

    def data(self) -> list[bytes]:
        return [bytes(m.get_data()) for m in self.msgs]


@contextlib.asynccontextmanager
async def raw_subscription(nc: Any, subject: str) -> AsyncIterator[list[Any]]:
    """Record every message on ``subject`` (nats-py core subscription)."""
    box: list[Any] = []

    async def cb(msg: Any) -> None:
        box.append(msg)

    sub = await nc.subscribe(subject, cb=cb)
    await settle(nc)
    try:
        yield box
    finally:
        await sub.unsubscribe()


AsyncCheck = Callable[[], Awaitable[Any]]
