"""Helpers for running the ``memphis-fast`` command line as processes (tests/cli)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from memphis_fast.broker import LocalBroker

#: the console script pip/maturin installed next to this interpreter
SCRIPT = Path(sys.executable).parent / "memphis-fast"
#: every CLI process is bounded by this (seconds)
PROC_TIMEOUT = 60.0


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    raw: bytes

    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without MEMPHIS_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMPHIS_")}
    env.update(extra)
    return env


def run(
    *args: str,
    input: bytes | str | None = None,
    env: dict[str, str] | None = None,
    script: bool = False,
    timeout: float = PROC_TIMEOUT,
) -> Result:
    """Run ``python -m memphis_fast ARGS`` (or the installed script) to completion."""
    cmd: list[str] = [str(SCRIPT)] if script else [sys.executable, "-m", "memphis_fast"]
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(
        [*cmd, *args],
        input=data if data is not None else b"",
        capture_output=True,
        env=env if env is not None else clean_env(),
        timeout=timeout,
        check=False,
    )
    return Result(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        proc.stdout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_args(broker: LocalBroker) -> list[str]:
    return [
        "--server",
        f"{broker.host}:{broker.port}",
        "--user",
        broker.username,
        "--password",
        broker.password,
    ]


Cli = Callable[..., Result]


def pub(cli: Cli, station: str, *args: str, input: bytes | str | None = None) -> Result:
    r = cli("pub", station, *args, input=input)
    assert r.returncode == 0, r.stderr
    return r


def sub(cli: Cli, station: str, *args: str, expect: int = 0) -> Result:
    r = cli("sub", station, *args)
    assert r.returncode == expect, (r.returncode, r.stderr)
    return r


def joined(args: Sequence[str]) -> str:
    return " ".join(args)
