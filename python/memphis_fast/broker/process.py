"""The broker process: supervises the nats-server child and runs the control plane.

``serve()`` is what ``memphis-fast broker`` runs. It starts nats-server (with
``PR_SET_PDEATHSIG``, so the server dies with this process whatever happens), runs the control
plane on its own asyncio loop, announces readiness, and then waits for Ctrl-C / SIGTERM, for
either part to fail, or (when started by :class:`~memphis_fast.broker.LocalBroker`) for its
parent to go away. Both parts are always stopped; a crash of either is reported, not hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from memphis_fast._server import NatsServer, NatsServerNotFound

from .config import ACCOUNT, INTERNAL_USER, SYSTEM_USER, BrokerConfig, ConfigError, default_data_dir
from .control_plane import ControlPlane, ControlPlaneConfig
from .nodes import NodeSet

__all__ = ["BrokerError", "serve"]

log = logging.getLogger("memphis_fast.broker")

INFO_FILE = "broker.json"
LOCK_FILE = "broker.lock"


class BrokerError(RuntimeError):
    """The broker could not start or stopped abnormally (reported without a traceback)."""


class _Stop(Exception):
    """SIGTERM before the event loop runs."""


class _DataDirLock:
    """An exclusive lock on a data directory: two brokers must never share a JetStream store."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise BrokerError(
                    f"the data directory {self.path.parent} is in use by another memphis-fast broker"
                    + (f" (pid {other})" if other else "")
                    + "; stop it or choose another --data-dir"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _client_tls(cfg: BrokerConfig) -> ssl.SSLContext | None:
    if not cfg.tls_enabled:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg.tls_ca)
    # The control plane connects to its own child over loopback: verify the chain, not the name.
    ctx.check_hostname = False
    ctx.load_cert_chain(cfg.tls_client_cert or cfg.tls_cert or "", cfg.tls_client_key or cfg.tls_key or "")
    return ctx


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # may hold the token
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _warn_other_mode(cfg: BrokerConfig, data_dir: Path) -> None:
    """JetStream keeps each account's data apart: password mode uses account $memphis, token
    mode the global account $G. Switching modes on one data directory hides the other's data."""
    mine, other, other_mode = (
        (ACCOUNT, "$G", "token") if cfg.auth == "password" else ("$G", ACCOUNT, "password")
    )
    streams = data_dir / "jetstream" / other / "streams"
    if streams.is_dir() and any(streams.iterdir()):
        log.warning(
            "%s holds data of %s mode (account %s), which this %s-mode broker (account %s) does not see; "
            "start it in %s mode to get it back",
            data_dir,
            other_mode,
            other,
            cfg.auth,
            mine,
            other_mode,
        )


def _warn_other_layout(cfg: BrokerConfig, data_dir: Path) -> None:
    """A single node keeps its store in the data directory, a cluster's nodes in node-<i>/:
    data of the other layout is not seen (and not touched)."""
    single = (data_dir / "jetstream").is_dir()
    nodes = sorted(p.name for p in data_dir.glob("node-*") if (p / "jetstream").is_dir())
    if cfg.cluster > 1 and single:
        log.warning("%s holds the data of a single-node broker, which this %d-node cluster does not see", data_dir, cfg.cluster)
    elif cfg.cluster == 1 and nodes:
        log.warning("%s holds the data of a %d-node cluster, which this single-node broker does not see", data_dir, len(nodes))
    elif cfg.cluster > 1 and nodes and len(nodes) != cfg.cluster:
        log.warning("%s holds the data of a %d-node cluster; starting %d nodes", data_dir, len(nodes), cfg.cluster)


def _monitor_url(server: NatsServer) -> str:
    for f in (server.workdir / "ports").glob("*.ports"):
        info = json.loads(f.read_text())
        urls = info.get("monitoring") or []
        if urls:
            return str(urls[0])
    raise BrokerError("nats-server did not report its monitoring port")


def _sweep_stale_memory_dirs() -> None:
    """A ``--memory`` broker killed with SIGKILL leaves its temporary data directory behind:
    remove those whose broker is gone (its pid is dead and nobody holds the lock)."""
    import fcntl

    for path in Path(tempfile.gettempdir()).glob("memphis-fast-broker-*"):
        lock_path = path / LOCK_FILE
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except OSError:
            continue
        try:
            pid_text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            if not pid_text.isdigit():
                continue  # a broker between creating and locking the file
            try:
                os.kill(int(pid_text), 0)
                continue  # alive
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            shutil.rmtree(path, ignore_errors=True)
            log.info("removed %s, left behind by a broker that was killed", path)
        finally:
            os.close(fd)


def serve(
    cfg: BrokerConfig,
    *,
    ready_file: str | os.PathLike[str] | None = None,
    exit_with_parent: bool = False,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Run the broker until stopped. Returns the process exit code (0: stopped cleanly)."""
    cfg.validate()
    binary, version = check_nats_server()
    tmp_dir: str | None = None
    if cfg.memory and cfg.data_dir is None:
        with contextlib.suppress(OSError):
            _sweep_stale_memory_dirs()
        tmp_dir = tempfile.mkdtemp(prefix="memphis-fast-broker-")
        data_dir = Path(tmp_dir)
    else:
        data_dir = Path(cfg.data_dir) if cfg.data_dir is not None else default_data_dir()
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the data directory {data_dir}: {exc.strerror}") from None

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise _Stop()

    _warn_other_mode(cfg, data_dir)
    _warn_other_layout(cfg, data_dir)
    previous = signal.signal(signal.SIGTERM, on_term)
    lock = _DataDirLock(data_dir)
    nodes: NodeSet | None = None
    info_path = data_dir / INFO_FILE
    try:
        lock.acquire()
        log.info(
            "nats-server %s: %s%s",
            ".".join(map(str, version)),
            binary,
            f" ({cfg.cluster} nodes)" if cfg.cluster > 1 else "",
        )
        limits = cfg.store_limits(data_dir)
        nodes = NodeSet(cfg, data_dir, limits, binary)
        for attempt in (1, 2):
            try:
                nodes.start(timeout=30)
            except RuntimeError as exc:
                text = str(exc)
                if "address already in use" in text:
                    what = f"port {cfg.port}" if cfg.cluster == 1 else "one of the nodes' ports"
                    raise BrokerError(
                        f"{what} on {cfg.host} is already in use (another broker or NATS server?); "
                        "choose another one with --port"
                    ) from None
                raise BrokerError(f"nats-server failed to start: {text}") from None
            try:
                nodes.wait_ready(timeout=40 if attempt == 1 else 60)
                break
            except (RuntimeError, TimeoutError) as exc:
                tail = nodes.log_tail()
                nodes.stop(timeout=10)
                if attempt == 1:
                    # Seen once under load: a node that never joined the meta group. A second
                    # start (new route ports unless they were given) has always worked.
                    log.warning("the cluster did not become ready (%s); starting its nodes again\n%s", exc, tail)
                    continue
                raise BrokerError(f"the cluster did not become ready: {exc}\n{tail}") from None
        for node in nodes.nodes:
            log.info("%s (pid %s) listening on %s:%s", node.name, node.pid, cfg.host, node.port)
        server = nodes.nodes[0].server
        connz_url = _monitor_url(server) + "/connz" if cfg.auth == "token" else None
        return asyncio.run(
            _run(cfg, nodes, data_dir, connz_url, info_path, ready_file, exit_with_parent, announce, limits)
        )
    except (_Stop, KeyboardInterrupt):
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if lock.fd is not None:
            # Only the broker that holds the lock wrote broker.json; one that failed to get the
            # lock must leave the running broker's file alone.
            with contextlib.suppress(OSError):
                info_path.unlink()
        if nodes is not None:
            nodes.stop(timeout=15)
            nodes.cleanup()
        lock.release()
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)


async def _run(
    cfg: BrokerConfig,
    nodes: NodeSet,
    data_dir: Path,
    connz_url: str | None,
    info_path: Path,
    ready_file: str | os.PathLike[str] | None,
    exit_with_parent: bool,
    announce: Callable[[str], None] | None,
    limits: tuple[int, int],
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0
    server = nodes.nodes[0].server

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("stopping (Ctrl-C again to kill)")
            stop.set()
        else:
            log.warning("killing nats-server")
            for node in nodes.nodes:
                node.stopping = True
                node.server.kill()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    if exit_with_parent:
        # LocalBroker keeps our stdin open; EOF means the process that started us is gone.
        def on_stdin() -> None:
            try:
                data = os.read(0, 4096)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(0)
                log.info("parent process went away, stopping")
                stop.set()

        loop.add_reader(0, on_stdin)

    scheme = "tls" if cfg.tls_enabled else "nats"
    url = f"{scheme}://127.0.0.1:{server.port}"
    if cfg.host not in ("127.0.0.1", "0.0.0.0", "::", "") and not cfg.host.startswith("127."):
        url = f"{scheme}://{cfg.host}:{server.port}"
    servers = [url] if not nodes.clustered else nodes.client_urls(scheme)
    reserve = cfg.metadata_reserve_mb * 1024 * 1024
    cp_config = ControlPlaneConfig(
        url=url,
        tls=_client_tls(cfg),
        users=cfg.user_types(),
        storage="memory" if cfg.memory else "file",
        inactive_ttl=cfg.inactive_ttl,
        dls_retention=cfg.dls_retention,
        account=ACCOUNT,
        servers=servers,
        nodes=nodes.count,
        internal_replicas=min(3, nodes.count),
        retry_for=11.0 if nodes.clustered else 0.0,
        # Token mode has no account to cap, so no reservation is needed (or possible) there.
        metadata_max_bytes=reserve * 3 // 4 if cfg.auth == "password" else None,
        dls_max_bytes=reserve // 4 if cfg.auth == "password" else None,
    )
    if cfg.auth == "password":
        cp_config.user, cp_config.password = INTERNAL_USER, cfg.internal_password
        cp_config.sys_user, cp_config.sys_password = SYSTEM_USER, cfg.system_password
    else:
        cp_config.token = cfg.token
        cp_config.connz_url = connz_url
    cp = ControlPlane(cp_config)
    code = 0
    supervisor: asyncio.Future[Any] | None = None
    try:
        try:
            await cp.start()
        except Exception as exc:
            if not all(node.server.is_running() for node in nodes.nodes):
                dead = next(node for node in nodes.nodes if not node.server.is_running())
                raise BrokerError(_server_died(dead.server)) from None
            raise BrokerError(f"the control plane failed to start: {exc}") from exc
        info = {
            "pid": os.getpid(),
            "nats_pid": server.proc.pid if server.proc else None,
            "host": cfg.host,
            "port": server.port,
            "servers": servers,
            "cluster": nodes.count,
            "nodes": nodes.describe(),
            "nats_server": str(server.binary),
            "nats_version": ".".join(map(str, server.version)),
            "max_memory_store_mb": limits[0],
            "max_file_store_mb": limits[1],
            "metadata_reserve_mb": cfg.metadata_reserve_mb,
            "auth": cfg.auth,
            "username": cfg.username,
            "password": cfg.password if cfg.auth == "password" else None,
            "token": cfg.token if cfg.auth == "token" else None,
            "tls": cfg.tls_enabled,
            "tls_cert": cfg.tls_client_cert or cfg.tls_cert,
            "tls_key": cfg.tls_client_key or cfg.tls_key,
            "tls_ca": cfg.tls_ca,
            "data_dir": str(data_dir),
            "memory": cfg.memory,
            "started": time.time(),
        }

        def publish_info() -> None:
            info["nodes"] = nodes.describe()
            _write_json(info_path, info)
            if ready_file is not None:
                _write_json(Path(ready_file), info)

        publish_info()
        if announce is not None:
            announce(_banner(cfg, nodes, data_dir, limits))

        waiters: set[asyncio.Future[Any]] = set()
        stopper = asyncio.ensure_future(stop.wait())
        server_exit: asyncio.Future[Any] | None = None
        if nodes.clustered:
            supervisor = asyncio.ensure_future(nodes.supervise(publish_info, cfg.node_restart_delay))
            waiters.add(supervisor)
        else:
            server_exit = asyncio.ensure_future(_wait_proc(server))
            waiters.add(server_exit)
        assert cp.failed is not None
        waiters |= {stopper, cp.failed}
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("shutting down")
        elif server_exit is not None and server_exit in done:
            if signals:  # killed on purpose by a second Ctrl-C
                code = 130
            else:
                log.error("%s", _server_died(server))
                code = 1
        elif supervisor is not None and supervisor in done:
            log.error("the node supervisor stopped: %r", supervisor.exception())
            code = 1
        else:
            log.error("the control plane failed: %s", cp.failed.exception())
            code = 1
        for fut in (server_exit, stopper):
            if fut is not None:
                fut.cancel()
    finally:
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(BaseException):
                await supervisor
        for node in nodes.nodes:
            node.stopping = True
        await cp.stop()
    return code


async def _wait_proc(server: NatsServer) -> None:
    # Polled, not proc.wait() in a thread: asyncio.run() would wait for that thread at exit,
    # and the server is only stopped after the loop has finished.
    while server.is_running():
        await asyncio.sleep(0.1)


def _server_died(server: NatsServer) -> str:
    code = server.proc.returncode if server.proc is not None else None
    tail = "\n".join(server.read_log().strip().splitlines()[-15:])
    return f"nats-server exited unexpectedly (exit code {code}); its last log lines:\n{tail}"


def _banner(cfg: BrokerConfig, nodes: NodeSet, data_dir: Path, limits: tuple[int, int]) -> str:
    if cfg.auth == "password":
        auth = f'password: user "{cfg.username}", password "{cfg.password}" (NATS user {cfg.username}$1)'
    else:
        auth = f'connection token "{cfg.token}"'
    store = "in memory, discarded on exit" if cfg.memory else str(data_dir)
    tls = " (TLS)" if cfg.tls_enabled else ""
    server = nodes.nodes[0].server
    per = " per node" if nodes.clustered else ""
    lines = []
    if nodes.clustered:
        hosts = ",".join(f"{cfg.host}:{node.port}" for node in nodes.nodes)
        lines.append(f"memphis-fast broker ready: a {nodes.count}-node JetStream cluster{tls}")
        for node in nodes.nodes:
            lines.append(f"  {node.name}: {cfg.host}:{node.port}")
        lines.append(f'  connect with host="{hosts}"')
    else:
        lines.append(f"memphis-fast broker ready on {cfg.host}:{server.port}{tls}")
    lines += [
        f"  auth: {auth}",
        f"  data: {store}",
        f"  store limits{per}: memory {limits[0]} MiB, file {limits[1]} MiB "
        f"({cfg.metadata_reserve_mb} MiB of each kept for the broker's metadata)",
        f"  nats-server {'.'.join(map(str, server.version))}: {server.binary}",
        "  Ctrl-C to stop",
    ]
    return "\n".join(lines) + "\n"


def check_nats_server() -> tuple[str, tuple[int, int, int]]:
    """Fail early, with the fix, when nats-server is missing or older than the oldest tested."""
    from memphis_fast._server import NatsServerTooOld
    from memphis_fast._server import check_nats_server as check

    try:
        return check()
    except (NatsServerNotFound, NatsServerTooOld) as exc:
        raise BrokerError(str(exc)) from None
