"""``LocalBroker``: start a local Memphis-protocol broker from Python (tests, benchmarks, apps).

The broker runs as a child process (``python -m memphis_fast.broker``), never on the caller's
event loop; it supervises its own nats-server child. ``start()`` returns once the control plane
is subscribed and ready. Whatever happens to the caller, nothing is left behind: the child
watches its stdin pipe (EOF = parent gone) and, when started from the main thread, also gets
``PR_SET_PDEATHSIG``; its nats-server dies with it in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .admin import AdminClient
from .config import DEFAULT_PASSWORD, DEFAULT_TOKEN

__all__ = ["BrokerStartError", "LocalBroker"]

T = TypeVar("T")


class BrokerStartError(RuntimeError):
    """The broker process did not become ready."""


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: a clean stop when the parent dies
    except Exception:
        pass


class LocalBroker:
    """A local Memphis-protocol broker in a child process.

    ``port=-1`` (the default here) picks a free port; ``data_dir=None`` uses a temporary
    directory that survives :meth:`restart` and is removed by :meth:`cleanup` (or on leaving
    the context manager). ``auth="token"`` switches to connection-token mode.

    ``cluster=3`` (or 5) runs that many nats-server nodes as one JetStream cluster under one
    control plane: :attr:`hosts`/:meth:`connect_kwargs` then list every node,
    :meth:`nodes` describes them, :meth:`kill_node` / :meth:`wait_node_restarted` /
    :meth:`wait_healthy` inject and await node faults (the broker restarts a node that dies
    after ``node_restart_delay`` seconds). ``max_msg_size_mb``, ``max_memory_store_mb``,
    ``max_file_store_mb`` and ``metadata_reserve_mb`` are the CLI's options of those names.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = -1,
        data_dir: str | os.PathLike[str] | None = None,
        memory: bool = False,
        auth: str = "password",
        username: str = "root",
        password: str = DEFAULT_PASSWORD,
        token: str | None = None,
        users: dict[str, str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        inactive_ttl: float | None = None,
        dls_retention: float | None = None,
        log_level: str = "info",
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        env: dict[str, str] | None = None,
        max_msg_size_mb: int | None = None,
        cluster: int = 1,
        max_memory_store_mb: int | None = None,
        max_file_store_mb: int | None = None,
        metadata_reserve_mb: int | None = None,
        node_restart_delay: float | None = None,
    ) -> None:
        if auth not in ("password", "token"):
            raise ValueError("auth must be 'password' or 'token'")
        if cluster not in (1, 3, 5):
            raise ValueError("cluster must be 1, 3 or 5")
        if max_msg_size_mb is not None and (
            isinstance(max_msg_size_mb, bool) or not isinstance(max_msg_size_mb, int) or not 0 < max_msg_size_mb <= 64
        ):
            raise ValueError(f"max_msg_size_mb must be an int between 1 and 64, not {max_msg_size_mb!r}")
        self.max_msg_size_mb = max_msg_size_mb
        self.cluster = cluster
        self.max_memory_store_mb = max_memory_store_mb
        self.max_file_store_mb = max_file_store_mb
        self.metadata_reserve_mb = metadata_reserve_mb
        self.node_restart_delay = node_restart_delay
        self.node_ports: list[int] | None = None  # a cluster's client ports, kept for restart()
        self.host = host
        self.port = port
        self.memory = memory
        self.auth = auth
        self.username = username
        self.password = password
        self.token = (token or DEFAULT_TOKEN) if auth == "token" else None
        self.users = dict(users or {})
        self.tls_cert = str(tls_cert) if tls_cert else None
        self.tls_key = str(tls_key) if tls_key else None
        self.tls_ca = str(tls_ca) if tls_ca else None
        self.inactive_ttl = inactive_ttl
        self.dls_retention = dls_retention
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.env = env
        self._tmp = tempfile.TemporaryDirectory(prefix="memphis-fast-localbroker-")
        self.workdir = Path(self._tmp.name)
        self._own_data_dir = data_dir is None and not memory
        if data_dir is not None:
            self.data_dir: Path | None = Path(data_dir)
        elif memory:
            self.data_dir = None  # the broker makes (and removes) its own throw-away store
        else:
            self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "broker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._log_fh: Any = None

    # -- properties ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'tls' if self.tls_cert else 'nats'}://{self.host}:{self.port}"

    @property
    def urls(self) -> list[str]:
        """Every node's client URL (one for a single node)."""
        if self.node_ports:
            scheme = "tls" if self.tls_cert else "nats"
            return [f"{scheme}://{self.host}:{p}" for p in self.node_ports]
        return [self.url]

    @property
    def hosts(self) -> str:
        """``host:port`` of every node, comma-separated: the ``host`` a cluster is connected with."""
        if self.node_ports:
            return ",".join(f"{self.host}:{p}" for p in self.node_ports)
        return self.host

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def nats_pid(self) -> int | None:
        pid = self.info.get("nats_pid")
        return int(pid) if pid else None

    @property
    def nats_user(self) -> str:
        """The NATS user a Memphis SDK logs in with in password mode (``root$1``)."""
        return f"{self.username}$1"

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Memphis.connect`` (memphis-py and memphis_fast)."""
        kw: dict[str, Any] = {"host": self.hosts, "port": self.port, "username": self.username}
        if self.auth == "token":
            kw["connection_token"] = self.token
        else:
            kw["password"] = self.password
        if self.tls_cert:
            kw.update(cert_file=self.tls_cert, key_file=self.tls_key, ca_file=self.tls_ca)
        return kw

    def nats_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` (a plain NATS client in the Memphis account)."""
        kw: dict[str, Any] = {"servers": self.urls}
        if self.auth == "token":
            kw["token"] = self.token
        else:
            kw["user"] = self.nats_user
            kw["password"] = self.password
        if self.tls_cert:
            kw["tls"] = self.client_tls()
        return kw

    def client_tls(self) -> ssl.SSLContext | None:
        if not self.tls_cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.tls_ca)
        ctx.load_cert_chain(self.tls_cert, self.tls_key)
        return ctx

    # -- lifecycle ----------------------------------------------------------------------------
    def command(self, ready_file: Path) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "memphis_fast.broker",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
            "--ready-file",
            str(ready_file),
            "--exit-with-parent",
        ]
        if self.memory:
            cmd.append("--memory")
        if self.data_dir is not None:
            cmd += ["--data-dir", str(self.data_dir)]
        if self.auth == "token":
            cmd += ["--token", str(self.token)]
        else:
            cmd += ["--username", self.username, "--password", self.password]
        for name, password in self.users.items():
            cmd += ["--user", f"{name}:{password}"]
        if self.tls_cert:
            cmd += ["--tls-cert", self.tls_cert, "--tls-key", str(self.tls_key), "--tls-ca", str(self.tls_ca)]
        if self.inactive_ttl is not None:
            cmd += ["--inactive-ttl", str(self.inactive_ttl)]
        if self.dls_retention is not None:
            cmd += ["--dls-retention", str(self.dls_retention)]
        if self.max_msg_size_mb is not None:
            cmd += ["--max-msg-size-mb", str(self.max_msg_size_mb)]
        if self.cluster > 1:
            cmd += ["--cluster", str(self.cluster)]
            if self.node_ports:
                cmd += ["--node-ports", ",".join(map(str, self.node_ports))]
        if self.max_memory_store_mb is not None:
            cmd += ["--max-memory-store-mb", str(self.max_memory_store_mb)]
        if self.max_file_store_mb is not None:
            cmd += ["--max-file-store-mb", str(self.max_file_store_mb)]
        if self.metadata_reserve_mb is not None:
            cmd += ["--metadata-reserve-mb", str(self.metadata_reserve_mb)]
        if self.node_restart_delay is not None:
            cmd += ["--node-restart-delay", str(self.node_restart_delay)]
        return cmd + self.extra_args

    def start(self) -> LocalBroker:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the broker is already running")
        ready = self.workdir / "ready.json"
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        self._log_fh = open(self.log_path, "ab")
        env = dict(os.environ if self.env is None else self.env)
        main_thread = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            self.command(ready),
            stdin=subprocess.PIPE,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=env,
            # Ctrl-C in a terminal must not reach the broker: the test's teardown stops it.
            start_new_session=True,
            preexec_fn=_child_setup if main_thread and sys.platform.startswith("linux") else None,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if ready.exists():
                try:
                    self.info = json.loads(ready.read_text())
                    break
                except ValueError:
                    pass
            if self.proc.poll() is not None:
                self._close_log()
                raise BrokerStartError(
                    f"the broker exited with code {self.proc.returncode}:\n{self.read_log()[-4000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerStartError(
                    f"the broker did not become ready within {self.startup_timeout}s:\n{self.read_log()[-4000:]}"
                )
            time.sleep(0.01)
        self.port = int(self.info["port"])  # a restart reuses the port, so clients can reconnect
        if self.cluster > 1:
            self.node_ports = [int(n["port"]) for n in self.info.get("nodes") or []]
        if self.data_dir is None and not self.memory:
            self.data_dir = Path(self.info["data_dir"])
        return self

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- cluster nodes (cluster=3 or 5) -----------------------------------------------------------
    def refresh_info(self) -> dict[str, Any]:
        """Read the broker's info again (it rewrites it when it restarts a node)."""
        ready = self.workdir / "ready.json"
        with contextlib.suppress(OSError, ValueError):
            self.info = json.loads(ready.read_text())
        return self.info

    def nodes(self) -> list[dict[str, Any]]:
        """Each node's name, client port, pid, monitoring URL, restart count (fresh)."""
        return list(self.refresh_info().get("nodes") or [])

    def node_index(self, port: int) -> int:
        """The index of the node listening on client port ``port``."""
        for i, node in enumerate(self.nodes()):
            if int(node["port"]) == port:
                return i
        raise KeyError(f"no node on port {port}")

    def kill_node(self, index: int, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` (default SIGKILL: a crash) to node ``index`` (0-based); returns its pid.
        The broker restarts it after its ``node_restart_delay``."""
        pid = int(self.nodes()[index]["pid"])
        os.kill(pid, sig)
        return pid

    def wait_node_restarted(self, index: int, old_pid: int, timeout: float = 60.0) -> None:
        """Wait until node ``index`` runs with a pid other than ``old_pid`` and is healthy."""
        deadline = time.monotonic() + timeout
        while True:
            node = self.nodes()[index]
            if node.get("pid") and int(node["pid"]) != old_pid and node.get("running"):
                break
            if not self.is_running():
                raise BrokerStartError(f"the broker exited:\n{self.read_log()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {index} was not restarted within {timeout} s")
            time.sleep(0.02)
        self.wait_healthy(max(1.0, deadline - time.monotonic()), only=[index])

    def wait_healthy(self, timeout: float = 60.0, only: Sequence[int] | None = None) -> None:
        """Wait until every node (or those in ``only``) answers /healthz with 200: JetStream has
        a meta leader and the node's streams and consumers are current."""
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        nodes = self.nodes()
        for i, _node in enumerate(nodes):
            if only is not None and i not in only:
                continue
            last = ""
            while True:
                monitor = self.nodes()[i].get("monitor")
                if monitor:
                    try:
                        with urllib.request.urlopen(str(monitor) + "/healthz", timeout=2) as resp:  # noqa: S310
                            if resp.status == 200:
                                break
                    except urllib.error.HTTPError as exc:
                        last = exc.read().decode(errors="replace")[:300]
                    except OSError as exc:
                        last = str(exc)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node {i} not healthy within {timeout} s: {last}")
                time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop cleanly (SIGTERM: the control plane, then nats-server). Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_tree()
                proc.wait()
        self._close_stdin()
        self._close_log()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the broker process (a crash); its nats-server dies with it (PDEATHSIG)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
            self._wait_nats_gone()
        self._close_stdin()
        self._close_log()

    def restart(self) -> LocalBroker:
        """Stop and start again on the same port and data directory."""
        self.stop()
        return self.start()

    def _kill_tree(self) -> None:
        nats_pid = self.nats_pid
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        if nats_pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(nats_pid, signal.SIGKILL)

    def _wait_nats_gone(self, timeout: float = 5.0) -> None:
        pid = self.nats_pid
        deadline = time.monotonic() + timeout
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.01)

    def _close_stdin(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def _close_log(self) -> None:
        fh, self._log_fh = self._log_fh, None
        if fh is not None:
            fh.close()

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def cleanup(self) -> None:
        """Stop and remove the temporary files (including an own temporary data directory)."""
        self.stop()
        if self._own_data_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self._tmp.cleanup()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    async def __aenter__(self) -> LocalBroker:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.cleanup)

    # -- operator helpers (async; the *_sync variants work with or without a running loop) ------
    def admin(self) -> AdminClient:
        """An operator client for this broker: ``async with broker.admin() as admin: ...``."""
        if self.auth == "token":
            return AdminClient(self.url, token=self.token, tls=self.client_tls())
        return AdminClient(self.url, user=self.nats_user, password=self.password, tls=self.client_tls())

    async def _with_admin(self, method: str, *args: Any, **kwargs: Any) -> Any:
        async with self.admin() as admin:
            return await getattr(admin, method)(*args, **kwargs)

    async def list_stations(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._with_admin("list_stations")
        return result

    async def list_schemas(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._with_admin("list_schemas")
        return result

    async def list_dls(self, station: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._with_admin("list_dls", station, type)
        return result

    async def resend_dls(self, station: str, ids: list[int] | None = None) -> int:
        result: int = await self._with_admin("resend_dls", station, ids)
        return result

    async def activate_schema(self, name: str, version: int) -> list[str]:
        result: list[str] = await self._with_admin("activate_schema", name, version)
        return result

    async def list_clients(self, station: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._with_admin("list_clients", station)
        return result

    def list_dls_sync(self, station: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        return _run_sync(self.list_dls(station, type))

    def resend_dls_sync(self, station: str, ids: list[int] | None = None) -> int:
        return _run_sync(self.resend_dls(station, ids))

    def activate_schema_sync(self, name: str, version: int) -> list[str]:
        return _run_sync(self.activate_schema(name, version))

    def list_clients_sync(self, station: str | None = None) -> dict[str, Any]:
        return _run_sync(self.list_clients(station))


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=runner)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    result: T = box["value"]
    return result
