"""The Go peers of the benchmark: memphis.go (the official Go client) and nats.go's JetStream API.

``benches/go`` is a small Go program (its module pinned, ``go.sum`` committed) that speaks the
runners' protocol of ``runner_common``: the same command-line flags (``--path``, ``--variant``,
``--json-out``, ``--host`` ... ``--batch``, ``--nats-pid``, ``--connects``), plus ``--client
memphis-go|nats-go``, and the same result JSON in ``--json-out``. It is built once per content
of the module (``go.mod``, ``go.sum``, the ``.go`` files) and Go version, into
``~/.cache/memphis-fast/bench-go/<hash>/bench-go`` (``$XDG_CACHE_HOME`` is honoured), with
``GOFLAGS=-mod=readonly``; nothing is written into the source tree.

Without ``go`` on ``PATH``, outside a source checkout, or when the build fails (for example no
module proxy and an empty module cache), every entry point returns a :class:`Skipped` (or a
result marked ``skipped``) that says why, instead of raising.

For the bench:

- :func:`command` ``(client)`` -> the argv prefix that replaces ``[sys.executable, runner]``;
  append the runner arguments the bench builds for the Python runners.
- :func:`run` ``(client, runner_args, timeout=...)`` -> one run's result dict (the same keys as
  ``runner_common.result``), or ``{"ok": False, "skipped": "<why>", "error": "skipped: <why>"}``.
- :data:`VARIANTS`, :data:`CLIENTS`, :func:`versions` for the plan and the metadata.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The Go peers, as client names in the bench.
CLIENTS = ("memphis-go", "nats-go")
#: (client, path) -> variants, in the form of ``cli.VARIANTS``: what the Go program implements.
VARIANTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("memphis-go", "produce-sync"): ("",),  # Produce(..., SyncProduce())
    ("memphis-go", "produce-nonblocking"): ("",),  # Produce(..., AsyncProduce())
    ("memphis-go", "consume-ack"): ("fetch", "consume"),  # Fetch(batch) / Consume(handler)
    ("memphis-go", "latency"): ("",),
    ("memphis-go", "connect"): ("",),
    ("nats-go", "produce-sync"): ("",),  # js.PublishMsg
    ("nats-go", "produce-nonblocking"): ("",),  # js.PublishMsgAsync + PublishAsyncComplete
    ("nats-go", "consume-ack"): ("",),  # Fetch(batch) on the durable + Ack()
    ("nats-go", "latency"): ("",),
    ("nats-go", "connect"): ("",),
}
BINARY = "bench-go"
BUILD_TIMEOUT = 900.0  # seconds: a cold module cache on 2 busy cores


@dataclass(frozen=True)
class Skipped:
    """The Go peers cannot run here; ``reason`` says why."""

    reason: str

    def __str__(self) -> str:
        return f"skipped: {self.reason}"


def source_dir() -> Path:
    """``benches/go`` of this checkout (``MEMPHIS_FAST_BENCH_GO_DIR`` overrides it)."""
    env = os.environ.get("MEMPHIS_FAST_BENCH_GO_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "benches" / "go"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memphis-fast" / "bench-go"


def _sources(src: Path) -> list[Path]:
    return sorted([src / "go.mod", src / "go.sum", *src.glob("*.go")])


def _go_version(go: str) -> str | Skipped:
    try:
        p = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Skipped(f"`go version` failed: {exc}")
    if p.returncode != 0:
        return Skipped(f"`go version` failed: {(p.stderr or p.stdout).strip()[-300:]}")
    return p.stdout.strip()


def _build_env() -> dict[str, str]:
    env = dict(os.environ)
    # Never change go.mod / go.sum; no VCS stamping (the module sits inside this git checkout);
    # the toolchain on PATH, never a download.
    env["GOFLAGS"] = "-mod=readonly -buildvcs=false"
    env.setdefault("GOTOOLCHAIN", "local")
    return env


_built: dict[Path, Path | Skipped] = {}


def build(*, force: bool = False) -> Path | Skipped:
    """The Go program's binary, built on first use and cached; or why it cannot be."""
    src = source_dir()
    if not force and src in _built:
        return _built[src]
    out = _build(src, force)
    if isinstance(out, Path):  # a failure is retried on the next call (e.g. the proxy is back)
        _built[src] = out
    return out


def _build(src: Path, force: bool) -> Path | Skipped:
    go = shutil.which("go")
    if go is None:
        return Skipped("`go` is not on PATH (install Go >= 1.22 to benchmark memphis.go and nats.go)")
    if not (src / "go.mod").is_file():
        return Skipped(f"the Go program's sources are not here ({src}): run the bench from a source checkout")
    version = _go_version(go)
    if isinstance(version, Skipped):
        return version
    h = hashlib.sha256(version.encode())
    for f in _sources(src):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    target_dir = cache_root() / h.hexdigest()[:16]
    binary = target_dir / BINARY
    if binary.is_file() and not force:
        return binary
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        with open(target_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (parallel benches, tests)
            if binary.is_file() and not force:
                return binary
            fd, tmp = tempfile.mkstemp(prefix=".bench-go-", dir=target_dir)
            os.close(fd)
            try:
                p = subprocess.run(
                    [go, "build", "-trimpath", "-o", tmp, "."],
                    cwd=src,
                    env=_build_env(),
                    capture_output=True,
                    text=True,
                    timeout=BUILD_TIMEOUT,
                )
                if p.returncode != 0:
                    tail = (p.stderr or p.stdout).strip()[-800:]
                    return Skipped(f"`go build` in {src} failed (exit {p.returncode}): {tail}")
                os.chmod(tmp, 0o755)
                os.replace(tmp, binary)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
    except subprocess.TimeoutExpired:
        return Skipped(f"`go build` in {src} did not finish within {BUILD_TIMEOUT:.0f} s")
    except OSError as exc:
        return Skipped(f"cannot build the Go program into {target_dir}: {exc}")
    return binary


def command(client: str) -> list[str] | Skipped:
    """The argv prefix of one Go run: ``[binary, "--client", client]``; the runner arguments
    (``--path ... --json-out ...``, as for the Python runners) follow it."""
    if client not in CLIENTS:
        raise ValueError(f"unknown Go client {client!r} (choose from {', '.join(CLIENTS)})")
    binary = build()
    if isinstance(binary, Skipped):
        return binary
    return [str(binary), "--client", client]


def _arg(args: Sequence[str], name: str, default: str = "") -> str:
    args = list(args)
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def _base(client: str, args: Sequence[str]) -> dict[str, Any]:
    def num(name: str, default: int) -> int:
        with contextlib.suppress(ValueError):
            return int(_arg(args, name, str(default)))
        return default

    return {
        "client": client,
        "path": _arg(args, "--path"),
        "variant": _arg(args, "--variant"),
        "payload": num("--payload", 128),
        "partitions": num("--partitions", 1),
    }


def run(client: str, runner_args: Sequence[str], *, timeout: float | None = None) -> dict[str, Any]:
    """One (client, path, run): the Go program with the Python runners' arguments.

    ``runner_args`` are what the bench passes a Python runner after its file name
    (``--path produce-sync --host ... --station ... --messages ...``); ``--json-out`` is added
    when missing. Returns the runner's result dict; a run that could not happen returns
    ``{"ok": False, "skipped": "<why>", "error": "skipped: <why>", ...}`` (Go missing, build
    failed), one that crashed or timed out ``{"ok": False, "error": ...}``."""
    base = _base(client, runner_args)
    cmd = command(client)
    if isinstance(cmd, Skipped):
        return {**base, "ok": False, "skipped": cmd.reason, "error": str(cmd)}
    args = list(runner_args)
    given = _arg(args, "--json-out")
    with tempfile.TemporaryDirectory(prefix="memphis-fast-bench-go-") as tmp:
        out = Path(given or Path(tmp) / "result.json")
        if not given:
            args += ["--json-out", str(out)]
        log = Path(tmp) / "stderr.txt"
        with open(log, "wb") as errf:
            proc = subprocess.Popen(
                [*cmd, *args],
                stdin=subprocess.DEVNULL,
                stdout=errf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return {**base, "ok": False, "error": f"timed out after {timeout:.0f} s"}
            finally:  # also on KeyboardInterrupt: never leave the run behind
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        tail = log.read_text(errors="replace").strip()[-600:]
        if code != 0 or not out.exists():
            return {**base, "ok": False, "error": f"bench-go exited with {code}: {tail}"}
        res: dict[str, Any] = json.loads(out.read_text())
        if not given:
            out.unlink()
    if not res.get("ok") and res.get("traceback"):
        res["error"] = f"{res.get('error')}\n{str(res['traceback'])[-1500:]}"
    return res


def versions() -> dict[str, str | None]:
    """The pinned client versions (from ``go.mod``) and the Go toolchain, for the metadata."""
    out: dict[str, str | None] = {"go": None, "memphis.go": None, "nats.go": None}
    go = shutil.which("go")
    if go is not None:
        v = _go_version(go)
        out["go"] = None if isinstance(v, Skipped) else v.removeprefix("go version ")
    with contextlib.suppress(OSError):
        mod = (source_dir() / "go.mod").read_text()
        for key, module in (
            ("memphis.go", "github.com/memphisdev/memphis.go"),
            ("nats.go", "github.com/nats-io/nats.go"),
        ):
            m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(\S+)", mod, re.M)
            out[key] = m.group(1) if m else None
    return out
