"""Which Memphis client connections are alive, as nats-server sees them (docs/protocol.md
§2.5, §2.9, §11.6).

A Memphis SDK names its NATS connection ``<connection_id>::<username>``; producers and consumers
are registered under that connection id. Stock nats-server cannot tell the control plane about
them at CONNECT time, so the tracker learns it from the server:

* password mode: the system account's ``$SYS.ACCOUNT.<account>.CONNECT`` / ``.DISCONNECT``
  events, plus a ``CONNZ`` snapshot at start and periodically (to repair anything missed);
* token mode: nats-server cannot combine a token with accounts, so there is no system user to
  log in with; the tracker polls the monitoring endpoint ``/connz`` on a private loopback port.

Several NATS connections can carry the same connection id (memphis-py's password "probe"
connection, reconnects), so the tracker counts server connection ids (``cid``) per Memphis id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS

from .._subjects import GLOBAL_ACCOUNT

__all__ = ["ConnectionTracker", "parse_connection_name"]

log = logging.getLogger("memphis_fast.broker.connections")


def parse_connection_name(name: str | None) -> str | None:
    """The Memphis connection id of a native SDK connection (``<id>::<user>``), else None."""
    if not name or "::" not in name:
        return None
    parts = name.split("::")
    if len(parts) != 2 or not parts[0]:
        return None
    return parts[0]


class ConnectionTracker:
    """Tracks live Memphis connection ids; calls ``on_change(connection_id, alive)`` on transitions."""

    def __init__(
        self,
        on_change: Callable[[str, bool], None],
        *,
        sys_nc: NATS | None = None,
        account: str = GLOBAL_ACCOUNT,
        connz_url: str | None = None,
        poll_interval: float = 0.5,
        resync_interval: float = 60.0,
        on_snapshot: Callable[[set[str], float], None] | None = None,
        servers: int = 1,
    ) -> None:
        if (sys_nc is None) == (connz_url is None):
            raise ValueError("give exactly one of sys_nc and connz_url")
        self.on_change = on_change
        self.on_snapshot = on_snapshot
        self.sys_nc = sys_nc
        self.account = account
        self.connz_url = connz_url
        self.poll_interval = poll_interval
        self.resync_interval = resync_interval
        # A cluster: CONNZ is answered by every node; a snapshot gathers up to this many answers.
        self.servers = servers
        # Keys are "<server id>/<cid>": client ids are only unique within one nats-server.
        self._cids: dict[str, str] = {}  # live connection key -> Memphis connection id
        self._by_id: dict[str, set[str]] = {}
        self._closed_cids: set[str] = set()
        self._dead: dict[str, float] = {}  # Memphis id -> when it was last seen going away
        self._task: asyncio.Task[None] | None = None
        self._subs: list[Any] = []

    # -- queries -------------------------------------------------------------------------------
    def is_live(self, conn_id: str) -> bool:
        return bool(self._by_id.get(conn_id))

    def is_known_dead(self, conn_id: str) -> bool:
        """Seen disconnected and not connected now: a registration for it arrived too late."""
        return conn_id in self._dead and not self.is_live(conn_id)

    def live_ids(self) -> list[str]:
        return sorted(cid for cid, cids in self._by_id.items() if cids)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.sys_nc is not None:
            base = f"$SYS.ACCOUNT.{self.account}"
            self._subs.append(await self.sys_nc.subscribe(f"{base}.CONNECT", cb=self._on_connect_event))
            self._subs.append(await self.sys_nc.subscribe(f"{base}.DISCONNECT", cb=self._on_disconnect_event))
            await self.sys_nc.flush()
            await self.resync()
            self._task = asyncio.create_task(self._periodic(self.resync_interval), name="conn-resync")
        else:
            await self.resync()
            self._task = asyncio.create_task(self._periodic(self.poll_interval), name="conn-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()

    async def _periodic(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.resync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("connection resync failed: %s", exc)
            cutoff = time.time() - 3600
            for conn_id, when in list(self._dead.items()):
                if when < cutoff:
                    del self._dead[conn_id]

    # -- events -------------------------------------------------------------------------------
    async def _on_connect_event(self, msg: Any) -> None:
        event = _event(msg.data)
        if event is not None:
            server, client = event
            self._connected(f"{server}/{client.get('id', 0)}", client.get("name"))

    async def _on_disconnect_event(self, msg: Any) -> None:
        event = _event(msg.data)
        if event is not None:
            server, client = event
            self._disconnected(f"{server}/{client.get('id', 0)}", client.get("name"))

    def _connected(self, cid: str, name: str | None) -> None:
        conn_id = parse_connection_name(name)
        if conn_id is None or cid in self._closed_cids or cid in self._cids:
            return
        self._cids[cid] = conn_id
        ids = self._by_id.setdefault(conn_id, set())
        was_live = bool(ids)
        ids.add(cid)
        if not was_live:
            self._dead.pop(conn_id, None)
            self._notify(conn_id, True)

    def _disconnected(self, cid: str, name: str | None) -> None:
        conn_id = parse_connection_name(name)
        if conn_id is None:
            return
        self._closed_cids.add(cid)
        if len(self._closed_cids) > 100_000:
            self._closed_cids = set(sorted(self._closed_cids)[-50_000:])
        self._cids.pop(cid, None)
        ids = self._by_id.get(conn_id)
        if ids is None:
            self._dead[conn_id] = time.time()
            return
        ids.discard(cid)
        if not ids:
            del self._by_id[conn_id]
            self._dead[conn_id] = time.time()
            self._notify(conn_id, False)

    def _notify(self, conn_id: str, alive: bool) -> None:
        try:
            self.on_change(conn_id, alive)
        except Exception:
            log.exception("connection change handler failed for %s", conn_id)

    # -- snapshots ----------------------------------------------------------------------------
    async def resync(self) -> None:
        """Reconcile with a CONNZ snapshot of the account's connections."""
        before = set(self._cids)
        started = time.time()
        conns = await self._connz()
        seen: set[str] = set()
        for cid, name in conns:
            seen.add(cid)
            self._connected(cid, name)
        # A cid that was live before the snapshot was requested and is missing from it has gone
        # (its DISCONNECT event was missed); cids that connected meanwhile are left alone.
        for cid in before - seen:
            conn_id = self._cids.get(cid)
            if conn_id is not None:
                self._disconnected(cid, f"{conn_id}::")
        if self.on_snapshot is not None:
            live = {cid for cid in (parse_connection_name(name) for _, name in conns) if cid}
            try:
                self.on_snapshot(live, started)
            except Exception:
                log.exception("connection snapshot handler failed")

    async def _connz(self) -> list[tuple[str, str | None]]:
        if self.sys_nc is not None and self.servers > 1:
            return await self._connz_cluster()
        out: list[tuple[str, str | None]] = []
        offset = 0
        while True:
            data = await self._connz_page(offset, 1024)
            server = str(data.get("server_id", ""))
            conns = data.get("connections") or []
            out.extend((f"{server}/{int(c.get('cid', 0))}", c.get("name")) for c in conns)
            offset += len(conns)
            if not conns or offset >= int(data.get("total", 0)):
                return out

    async def _connz_cluster(self, timeout: float = 2.0) -> list[tuple[str, str | None]]:
        """Every node's part of the account's connections: CONNZ is answered by each node that
        has the account, so the answers are gathered (until one per node or ``timeout``). A node
        that does not answer is down, and so are the connections it had."""
        assert self.sys_nc is not None
        nc = self.sys_nc
        inbox = nc.new_inbox()
        answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def on_msg(msg: Any) -> None:
            with contextlib.suppress(ValueError):
                answers.put_nowait(json.loads(msg.data))

        sub = await nc.subscribe(inbox, cb=on_msg)
        out: list[tuple[str, str | None]] = []
        try:
            body = json.dumps({"offset": 0, "limit": 100_000}).encode()
            await nc.publish(f"$SYS.REQ.ACCOUNT.{self.account}.CONNZ", body, reply=inbox)
            deadline = asyncio.get_running_loop().time() + timeout
            got = 0
            while got < self.servers:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    payload = await asyncio.wait_for(answers.get(), left)
                except TimeoutError:
                    break
                got += 1
                if "error" in payload:
                    continue
                data = payload.get("data") or {}
                server = str(data.get("server_id") or (payload.get("server") or {}).get("id", ""))
                for c in data.get("connections") or []:
                    out.append((f"{server}/{int(c.get('cid', 0))}", c.get("name")))
        finally:
            await sub.unsubscribe()
        return out

    async def _connz_page(self, offset: int, limit: int) -> dict[str, Any]:
        if self.sys_nc is not None:
            body = json.dumps({"offset": offset, "limit": limit}).encode()
            resp = await self.sys_nc.request(f"$SYS.REQ.ACCOUNT.{self.account}.CONNZ", body, timeout=5)
            payload = json.loads(resp.data)
            if "error" in payload:
                raise RuntimeError(str(payload["error"]))
            data: dict[str, Any] = payload.get("data") or {}
            if not data.get("server_id"):
                data["server_id"] = (payload.get("server") or {}).get("id", "")
            return data
        url = f"{self.connz_url}?offset={offset}&limit={limit}"
        return await asyncio.to_thread(_http_json, url)


def _http_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own loopback monitor
        result: dict[str, Any] = json.loads(resp.read())
        return result


def _event(data: bytes) -> tuple[str, dict[str, Any]] | None:
    """A connect/disconnect event's server id and client block."""
    try:
        event = json.loads(data)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    client = event.get("client")
    server = event.get("server")
    server_id = str(server.get("id", "")) if isinstance(server, dict) else ""
    return (server_id, client) if isinstance(client, dict) else None
