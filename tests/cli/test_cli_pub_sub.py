"""``memphis-fast pub`` / ``sub`` run as processes against a real local broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli, clean_env, free_port, pub, run, server_args, sub

from memphis_fast.broker import LocalBroker

pytestmark = pytest.mark.cli


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


# -- pub: sources ---------------------------------------------------------------------------------
def test_pub_argument_then_sub_raw(cli: Cli, uid: Callable[[str], str]) -> None:
    st = uid("cli-arg")
    r = pub(cli, st, "hello world")
    assert r.stdout == ""
    assert f"produced 1 message(s) to station {st}" in r.stderr
    assert sub(cli, st, "--count", "1", "--raw").stdout == "hello world\n"
    # MESSAGE after an option
    assert pub(cli, st, "--quiet", "second").stderr == ""
    assert sub(cli, st, "--count", "2", "--raw").stdout == "hello world\nsecond\n"


def test_pub_stdin_one_message_per_line(cli: Cli, uid: Callable[[str], str]) -> None:
    st = uid("cli-lines")
    r = pub(cli, st, "--json", input="a\nb\r\n\nc")  # CRLF stripped, the empty line skipped
    assert [x["sequence"] for x in records(r.stdout)] == [1, 2, 3]
    assert sub(cli, st, "--count", "3", "--raw").stdout == "a\nb\nc\n"
    # "-" is stdin too; --lines is the default made explicit
    pub(cli, st, "-", "--lines", input="d\ne\n")
    assert sub(cli, st, "--count", "5", "--raw").stdout == "a\nb\nc\nd\ne\n"


def test_pub_stdin_whole(cli: Cli, uid: Callable[[str], str]) -> None:
    st = uid("cli-whole")
    payload = b"line 1\nline 2\n\xff\x00binary"
    pub(cli, st, "--whole", input=payload)
    (rec,) = records(sub(cli, st, "--count", "1", "--json").stdout)
    assert "data" not in rec
    import base64

    assert base64.b64decode(rec["data_base64"]) == payload


def test_pub_count_and_template(cli: Cli, uid: Callable[[str], str]) -> None:
    st = uid("cli-count")
    r = pub(cli, st, "n={{Count}}", "--count", "4", "--json", "--header", "k=v{{Count}}")
    res = records(r.stdout)
    assert [x["index"] for x in res] == [0, 1, 2, 3]
    assert [x["sequence"] for x in res] == [1, 2, 3, 4]
    assert {x["stream"] for x in res} == {f"{st}$1"} or len({x["stream"] for x in res}) == 1
    assert not any(x["duplicate"] for x in res)
    got = records(sub(cli, st, "--count", "4", "--json").stdout)
    assert [m["data"] for m in got] == ["n=1", "n=2", "n=3", "n=4"]
    assert [m["headers"]["k"] for m in got] == ["v1", "v2", "v3", "v4"]


def test_pub_empty_stdin_is_an_error(cli: Cli, uid: Callable[[str], str]) -> None:
    r = cli("pub", uid("cli-empty"), input="")
    assert r.returncode == 1
    assert "no message to produce" in r.stderr


# -- pub: options ---------------------------------------------------------------------------------
def test_headers_round_trip(cli: Cli, uid: Callable[[str], str]) -> None:
    st = uid("cli-hdr")
    pub(cli, st, "x", "--header", "a=1", "-H", "b=x=y", "--header", "c:colon")
    (m,) = records(sub(cli, st, "--count", "1", "--json").stdout)
    assert m["headers"] == {"a": "1", "b": "x=y", "c": "colon"}  # no $memphis* headers shown
    pub(cli, st, "y", "--header", "trace=abc")
    text = sub(cli, st, "--count", "2", "--headers").stdout
    assert f"[#2] {st} seq 2 partition 1\ntrace: abc\ny\n\n" in text
    plain = sub(cli, st, "--count", "2").stdout
    assert "trace: abc" not in plain and f"[#1] {st} seq 1 partition 1\nx\n\n" in plain


def test_msg_id_deduplicates(cli: Cli, uid: Callable[[str], str]) -> None:
    st = uid("cli-dedup")
    r = pub(cli, st, "once", "--msg-id", "order-1", "--count", "3", "--json")
    res = records(r.stdout)
    assert [x["duplicate"] for x in res] == [False, True, True]
    assert {x["sequence"] for x in res} == {1}
    assert {x["msg_id"] for x in res} == {"order-1"}
    r = pub(cli, st, "again", "--msg-id", "order-1")
    assert "1 duplicate(s) not stored again" in r.stderr
    out = sub(cli, st, "--timeout", "1", "--json").stdout
    assert [m["data"] for m in records(out)] == ["once"]


def test_nonblocking(cli: Cli, uid: Callable[[str], str]) -> None:
    st = uid("cli-nb")
    lines = "".join(f"{i}\n" for i in range(500))
    r = pub(cli, st, "--nonblocking", "--json", input=lines)
    assert records(r.stdout) == [{"station": st, "produced": 500}]
    out = sub(cli, st, "--count", "500", "--raw", "--batch-size", "200").stdout
    assert out == lines


async def test_partitions(cli: Cli, uid: Callable[[str], str], connect: Any) -> None:
    st = uid("cli-parts")
    conn = await connect()
    await conn.station(st, partitions_number=3)
    r = pub(cli, st, "p2", "--partition-number", "2", "--json")
    assert records(r.stdout)[0]["stream"].endswith("$2")
    streams = {
        records(pub(cli, st, "k", "--partition-key", "customer-7", "--json").stdout)[0]["stream"]
        for _ in range(3)
    }
    assert len(streams) == 1  # a key always routes to the same partition
    r = cli("pub", st, "x", "--partition-number", "4")
    assert r.returncode == 1 and "out of range" in r.stderr.lower()
    got = records(sub(cli, st, "--count", "4", "--json").stdout)
    assert sorted(m["data"] for m in got) == ["k", "k", "k", "p2"]
    assert {m["partition"] for m in got if m["data"] == "p2"} == {2}


async def test_schema_violation_is_one_line_exit_1(
    cli: Cli, uid: Callable[[str], str], connect: Any, tmp_path: Path
) -> None:
    st, schema = uid("cli-schema"), uid("cli-json")
    conn = await connect()
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]})
    )
    await conn.create_schema(schema, "json", str(path))
    await conn.station(st)
    await conn.enforce_schema(schema, st)
    r = pub(cli, st, '{"id": 7}', "--json")
    assert records(r.stdout)[0]["sequence"] == 1
    r = cli("pub", st, '{"id": "seven"}')
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "does not match the schema" in r.stderr


# -- sub ------------------------------------------------------------------------------------------
def test_sub_timeout_without_messages(cli: Cli, uid: Callable[[str], str]) -> None:
    t0 = time.monotonic()
    r = sub(cli, uid("cli-idle"), "--timeout", "1")
    assert r.stdout == ""
    assert time.monotonic() - t0 < 20
    r = sub(cli, uid("cli-idle"), "--timeout", "1", "--count", "2", expect=1)
    assert "received 0 of 2" in r.stderr


def test_sub_count_short_of_messages_exits_1(cli: Cli, uid: Callable[[str], str]) -> None:
    st = uid("cli-short")
    pub(cli, st, "-", input="1\n2\n3\n")
    r = sub(cli, st, "--count", "4", "--timeout", "1", "--raw", expect=1)
    assert r.stdout == "1\n2\n3\n"
    assert "received 3 of 4" in r.stderr


def test_sub_json_fields(cli: Cli, uid: Callable[[str], str]) -> None:
    st = uid("cli-json")
    pub(cli, st, "héllo")
    (m,) = records(sub(cli, st, "--count", "1", "--json").stdout)
    assert m["station"] == st and m["partition"] == 1 and m["sequence"] == 1
    assert m["data"] == "héllo" and m["delivery_count"] == 1 and m["headers"] == {}
    assert m["time_sent"].endswith("Z")


def test_sub_group_ack_and_no_ack(cli: Cli, uid: Callable[[str], str]) -> None:
    st = uid("cli-ack")
    pub(cli, st, "-", input="1\n2\n")
    # Acknowledged: the group does not get them again.
    assert sub(cli, st, "--group", "acked", "--count", "2", "--raw").stdout == "1\n2\n"
    assert sub(cli, st, "--group", "acked", "--timeout", "1", "--raw").stdout == ""
    # Not acknowledged: redelivered to the group after its ack wait.
    first = sub(cli, st, "--group", "lazy", "--count", "2", "--json", "--no-ack", "--ack-wait", "1")
    assert [m["delivery_count"] for m in records(first.stdout)] == [1, 1]
    # (the same --ack-wait: every member that joins a group sets its ack wait)
    again = sub(cli, st, "--group", "lazy", "--count", "2", "--json", "--ack-wait", "1", "--timeout", "15")
    again = records(again.stdout)
    assert [m["data"] for m in again] == ["1", "2"]
    assert [m["delivery_count"] for m in again] == [2, 2]
    assert sub(cli, st, "--group", "lazy", "--timeout", "1").stdout == ""


def test_sub_own_group_starts_at_the_first_message_or_last_n(cli: Cli, uid: Callable[[str], str]) -> None:
    st = uid("cli-last")
    pub(cli, st, "-", input="1\n2\n3\n")
    assert sub(cli, st, "--timeout", "1", "--raw").stdout == "1\n2\n3\n"
    assert sub(cli, st, "--timeout", "1", "--raw").stdout == "1\n2\n3\n"  # its own group each time
    assert sub(cli, st, "--last", "1", "--timeout", "1", "--raw").stdout == "3\n"


# -- connection -----------------------------------------------------------------------------------
def test_explicit_server_and_environment(broker: LocalBroker, uid: Callable[[str], str]) -> None:
    st = uid("cli-env")
    r = run("pub", st, "by-option", *server_args(broker))
    assert r.returncode == 0, r.stderr
    env = clean_env(
        MEMPHIS_SERVER=f"nats://{broker.host}:{broker.port}",
        MEMPHIS_USER=broker.username,
        MEMPHIS_PASSWORD=broker.password,
    )
    r = run("pub", st, "by-env", env=env)
    assert r.returncode == 0, r.stderr
    # a list of servers: the first one is down, the client fails over to the next
    r = run(
        "sub", st, "--count", "2", "--raw", "--server", f"127.0.0.1:{free_port()},{broker.host}:{broker.port}"
    )
    assert (r.returncode, r.stdout) == (0, "by-option\nby-env\n"), r.stderr
    r = run("pub", st, "x", env={**env, "MEMPHIS_PASSWORD": "wrong"})
    assert r.returncode == 1
    assert "Authorization Violation" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run("pub", st, "x", "--password", "wrong", env={**env, "MEMPHIS_PASSWORD": broker.password})
    assert r.returncode == 1, "an option overrides the environment"


def test_token_broker_through_broker_json(uid: Callable[[str], str]) -> None:
    """A token-mode broker: its broker.json gives the token (no option needed)."""
    with LocalBroker(auth="token", token="s3cret") as b:
        assert b.data_dir is not None
        env = clean_env(MEMPHIS_FAST_BROKER_DATA=str(b.data_dir))
        st = uid("cli-token")
        r = run("pub", st, "t1", env=env)
        assert r.returncode == 0, r.stderr
        r = run("pub", st, "t2", "--server", f"{b.host}:{b.port}", "--token", "s3cret")
        assert r.returncode == 0, r.stderr
        r = run("pub", st, "t3", "--token", "nope", env=env)
        assert r.returncode == 1 and "Authorization Violation" in r.stderr
        r = run("sub", st, "--count", "2", "--raw", env={**env, "MEMPHIS_TOKEN": "s3cret"})
        assert (r.returncode, r.stdout) == (0, "t1\nt2\n"), r.stderr


def test_broker_not_running(tmp_path: Path, uid: Callable[[str], str]) -> None:
    port = free_port()
    r = run("pub", uid("cli-down"), "x", "--server", f"127.0.0.1:{port}")
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert f"cannot connect to the broker at 127.0.0.1:{port}" in line
    # A broker.json left behind by a broker that was killed: the message says so.
    dead = os.fork()
    if dead == 0:  # pragma: no cover - the child exits at once
        os._exit(0)
    os.waitpid(dead, 0)
    (tmp_path / "broker.json").write_text(
        json.dumps(
            {"pid": dead, "host": "127.0.0.1", "port": port, "auth": "password", "password": "memphis"}
        )
    )
    r = run("sub", uid("cli-down"), "--count", "1", env=clean_env(MEMPHIS_FAST_BROKER_DATA=str(tmp_path)))
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert f"(pid {dead}) is not running" in line and "memphis-fast broker" in line


# -- usage errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["pub"],  # no station
        ["sub"],
        ["pub", "st", "x", "--count", "0"],
        ["pub", "st", "x", "--count", "many"],
        ["pub", "st", "x", "--partition-key", "k", "--partition-number", "1"],
        ["pub", "st", "x", "--whole"],  # --whole is about stdin
        ["pub", "st", "-q", "x", "y"],  # two messages
        ["pub", "st", "x", "y"],
        ["pub", "st", "x", "--header", "novalue"],
        ["pub", "st", "x", "--token", "t", "--password", "p"],
        ["pub", "st", "x", "--tlscert", "/nonexistent/cert.pem"],
        ["sub", "st", "--timeout", "-1"],
        ["sub", "st", "--json", "--raw"],
        ["sub", "st", "--bogus"],
    ],
)
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    # An empty data directory and a closed port: nothing may be sent anyway.
    env = clean_env(MEMPHIS_FAST_BROKER_DATA=str(tmp_path), MEMPHIS_SERVER=f"127.0.0.1:{free_port()}")
    r = run(*args, env=env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stdout == ""
    assert "usage" in r.stderr


# -- signals and pipes ----------------------------------------------------------------------------
def _start_sub(broker: LocalBroker, *args: str) -> subprocess.Popen[bytes]:
    assert broker.data_dir is not None
    env = clean_env(MEMPHIS_FAST_BROKER_DATA=str(broker.data_dir))
    return subprocess.Popen(
        [sys.executable, "-m", "memphis_fast", "sub", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["int", "term"])
def test_sub_stopped_by_a_signal_cleans_up(
    broker: LocalBroker, cli: Cli, uid: Callable[[str], str], sig: int, code: int
) -> None:
    st = uid("cli-sig")
    pub(cli, st, "first")
    proc = _start_sub(broker, st, "--raw", "--name", "sig-reader")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"first\n"  # it runs (and would wait forever)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        proc.stdout.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    # Its own consumer group was removed on the way out.
    clients = broker.list_clients_sync(st)
    assert [c["name"] for c in clients["consumers"]] == []


def test_sub_into_a_closed_pipe(broker: LocalBroker, cli: Cli, uid: Callable[[str], str]) -> None:
    """``memphis-fast sub ... | head -1``: the reader goes away; no traceback, exit 1, and what
    could not be written is not acknowledged: the group gets it again."""
    st = uid("cli-pipe")
    pad = "x" * 100  # 300 KB in all: more than a pipe buffer holds
    pub(cli, st, "--nonblocking", "-q", input="".join(f"{i} {pad}\n" for i in range(3000)))
    proc = _start_sub(broker, st, "--raw", "--group", "piped", "--batch-size", "500", "--ack-wait", "1")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"0 {pad}\n".encode()
        proc.stdout.close()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    rest = sub(cli, st, "--group", "piped", "--timeout", "5", "--ack-wait", "1", "--raw").stdout
    numbers = sorted({int(line.split()[0]) for line in rest.splitlines()})
    assert numbers, "nothing came again"
    assert numbers == list(range(numbers[0], 3000)), "a message that was not written was acknowledged"


def test_pub_streams_stdin(broker: LocalBroker, cli: Cli, uid: Callable[[str], str]) -> None:
    """``tail -f log | memphis-fast pub st``: each line is produced when it arrives, not at EOF,
    and an option before MESSAGE's place ("-") is fine."""
    st = uid("cli-stream")
    assert broker.data_dir is not None
    proc = subprocess.Popen(
        [sys.executable, "-m", "memphis_fast", "pub", st, "--json", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(MEMPHIS_FAST_BROKER_DATA=str(broker.data_dir)),
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        for n in (1, 2):
            proc.stdin.write(f"line {n}\n".encode())
            proc.stdin.flush()
            assert json.loads(proc.stdout.readline())["sequence"] == n  # stored while stdin is open
            assert sub(cli, st, "--last", "1", "--count", "1", "--raw").stdout == f"line {n}\n"
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
