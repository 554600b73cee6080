"""The broker's nats-server nodes: one, or a JetStream cluster of 3 or 5 on loopback.

A cluster's nodes are named ``memphis-fast-<i>``, listen for clients on their own ports, join
each other with routes on loopback, and keep their stores apart under the data directory
(``node-<i>/``). The names are what JetStream's Raft groups know a peer by, so a restart on the
same data directory (with other route ports if need be) finds every stream again.

The supervisor restarts a node that exits while the broker runs (as a Kubernetes StatefulSet
would): killing one is a fault the cluster rides through, not the end of the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memphis_fast._server import NatsServer

from .config import BrokerConfig

__all__ = ["CLUSTER_NAME", "Node", "NodeSet"]

log = logging.getLogger("memphis_fast.broker")

CLUSTER_NAME = "memphis-fast"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free right now (the kernel's choice; a race is retried by the caller)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Node:
    index: int  # 1-based
    name: str
    server: NatsServer
    route_port: int = 0
    restarts: int = 0
    stopping: bool = False

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def pid(self) -> int | None:
        return self.server.proc.pid if self.server.proc is not None else None

    def monitor_url(self) -> str | None:
        for f in (self.server.workdir / "ports").glob("*.ports"):
            try:
                urls = json.loads(f.read_text()).get("monitoring") or []
            except (OSError, ValueError):
                continue
            if urls:
                return str(urls[0])
        return None


class NodeSet:
    """The nodes of one broker: built from a :class:`BrokerConfig`, started, watched, stopped."""

    def __init__(
        self, cfg: BrokerConfig, data_dir: Path, limits: tuple[int, int], binary: str | None = None
    ) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.limits = limits
        self.binary = binary
        self.count = cfg.cluster
        self.nodes: list[Node] = []
        self._fixed_ports = cfg.cluster == 1 or cfg.node_ports is not None or cfg.port != -1

    @property
    def clustered(self) -> bool:
        return self.count > 1

    # -- building ------------------------------------------------------------------------------
    def _client_ports(self) -> list[int]:
        cfg = self.cfg
        if cfg.node_ports is not None:
            return list(cfg.node_ports)
        if cfg.port != -1:
            return [cfg.port + i for i in range(self.count)]
        return free_ports(self.count)

    def _build(self) -> None:
        cfg = self.cfg
        memory, file = self.limits
        common = cfg.nats_config(self.limits)
        env = cfg.nats_env()
        if not self.clustered:
            server = NatsServer(
                port=cfg.port,
                host=cfg.host,
                store_dir=self.data_dir,
                config=common,
                env=env,
                binary=self.binary,
                log_file=self.data_dir / "nats-server.log",
                workdir=self.data_dir / "run",
                max_memory_store=str(memory * 1024 * 1024),
                max_file_store=str(file * 1024 * 1024),
            )
            self.nodes = [Node(1, "memphis-fast", server)]
            return
        client_ports = self._client_ports()
        route_ports = free_ports(self.count)
        self.nodes = []
        for i in range(self.count):
            name = f"{CLUSTER_NAME}-{i + 1}"
            node_dir = self.data_dir / f"node-{i + 1}"
            routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for j, p in enumerate(route_ports) if j != i)
            # Clients learn the other nodes from INFO.connect_urls: advertise the address they
            # connect to, not every interface of the machine (nats-server's default).
            advertise = "127.0.0.1" if cfg.host in ("", "0.0.0.0", "::") else cfg.host
            node_config = (
                f'server_name: "{name}"\n'
                f'client_advertise: "{advertise}:{client_ports[i]}"\n'
                "cluster {\n"
                f'  name: "{CLUSTER_NAME}"\n'
                f'  listen: "127.0.0.1:{route_ports[i]}"\n'
                f"  routes: [{routes}]\n"
                "  connect_retries: 120\n"
                "}\n"
                # A private loopback monitoring port: /healthz says when the node is ready.
                + ("" if cfg.auth == "token" else 'http: "127.0.0.1:-1"\n')
                + common
            )
            server = NatsServer(
                port=client_ports[i],
                host=cfg.host,
                store_dir=node_dir,
                config=node_config,
                env=env,
                binary=self.binary,
                log_file=node_dir / "nats-server.log",
                workdir=node_dir / "run",
                max_memory_store=str(memory * 1024 * 1024),
                max_file_store=str(file * 1024 * 1024),
            )
            self.nodes.append(Node(i + 1, name, server, route_ports[i]))

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        """Start every node; a port race (only with ports picked here) is retried with new ones."""
        for attempt in range(3):
            self._build()
            try:
                for node in self.nodes:
                    node.server.start(timeout=timeout)
                return
            except RuntimeError as exc:
                self.stop(timeout=5)
                if "address already in use" in str(exc) and not self._fixed_ports and attempt < 2:
                    log.debug("a port was taken meanwhile; picking others")
                    continue
                raise

    def wait_ready(self, timeout: float = 60.0) -> None:
        """A cluster is ready when every node's /healthz answers OK: JetStream has a meta leader
        and the node's streams and consumers are current (a condition, not a sleep)."""
        if not self.clustered:
            return
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            self.wait_node_ready(node, max(0.1, deadline - time.monotonic()))
        self.wait_meta_peers(max(0.1, deadline - time.monotonic()))

    def wait_meta_peers(self, timeout: float) -> None:
        """Wait until the meta leader sees every other node as a current, online peer: before
        that, placing a replicated stream can fail with "no suitable peers for placement"."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            for node in self.nodes:
                url = node.monitor_url()
                if url is None:
                    continue
                try:
                    with urllib.request.urlopen(url + "/jsz", timeout=2) as resp:  # noqa: S310
                        meta = json.loads(resp.read()).get("meta_cluster") or {}
                except (OSError, ValueError):
                    continue
                if meta.get("leader") != node.name:
                    continue
                last = meta.get("replicas")
                peers = [r for r in meta.get("replicas") or [] if r.get("current") and not r.get("offline")]
                if len(peers) == self.count - 1:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the meta leader does not see every peer: {last}")
            time.sleep(0.05)

    def wait_node_ready(self, node: Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = node.monitor_url()
        last = "no monitoring port"
        while True:
            if not node.server.is_running():
                raise RuntimeError(f"node {node.name} exited: {node.server.read_log()[-2000:]}")
            if url is None:
                url = node.monitor_url()
            if url is not None:
                try:
                    with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:  # noqa: S310
                        if resp.status == 200:
                            return
                except urllib.error.HTTPError as exc:
                    last = exc.read().decode(errors="replace")[:300]
                except OSError as exc:
                    last = str(exc)
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {node.name} not ready within {timeout:.0f} s: {last}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        for node in self.nodes:
            node.stopping = True
        # Followers first, in reverse: each clean stop hands its leaderships to running nodes.
        for node in reversed(self.nodes):
            node.server.stop(timeout=timeout)

    def log_tail(self, lines: int = 8) -> str:
        """The last warnings and errors of each node's log (for a start that went wrong)."""
        out = []
        for node in self.nodes:
            picked = [
                ln for ln in node.server.read_log().splitlines() if "[ERR]" in ln or "[WRN]" in ln or "[FTL]" in ln
            ]
            if picked:
                out.append(f"{node.name}:\n  " + "\n  ".join(picked[-lines:]))
        return "\n".join(out)

    def cleanup(self) -> None:
        for node in self.nodes:
            node.server.cleanup()

    def client_urls(self, scheme: str) -> list[str]:
        host = self.cfg.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return [f"{scheme}://{host}:{node.port}" for node in self.nodes]

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": node.name,
                "port": node.port,
                "pid": node.pid,
                "route_port": node.route_port,
                "monitor": node.monitor_url(),
                "restarts": node.restarts,
                "running": node.server.is_running(),
            }
            for node in self.nodes
        ]

    # -- supervision -----------------------------------------------------------------------------
    async def supervise(self, changed: Callable[[], None], restart_delay: float) -> None:
        """Restart a cluster node that exits (kill -9, crash, a stop from outside) on its own
        ports and store, after ``restart_delay`` seconds; ``changed()`` after each restart."""
        while True:
            await asyncio.sleep(0.1)
            for node in self.nodes:
                if node.stopping or node.server.is_running():
                    continue
                code = node.server.proc.returncode if node.server.proc is not None else None
                log.warning("node %s (port %s) exited with code %s; restarting it", node.name, node.port, code)
                await asyncio.sleep(restart_delay)
                backoff = 0.5
                while not node.stopping:
                    try:
                        node.server.requested_port = node.port
                        await asyncio.to_thread(node.server.start, 30.0)
                        break
                    except (RuntimeError, TimeoutError) as exc:
                        log.error("node %s did not start again: %s", node.name, str(exc)[-500:])
                        with contextlib.suppress(Exception):
                            node.server.stop(timeout=5)
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 10.0)
                node.restarts += 1
                log.info("node %s is running again (pid %s)", node.name, node.pid)
                changed()
