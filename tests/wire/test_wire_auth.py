"""Authentication against a real nats-server: token, user/password, the server's reason on a
refusal, and the memphis fallback user (``root$1`` refused -> ``root``) with the number of
TCP connections counted by the server's monitoring endpoint."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from wire_helpers import MONITORING, Connect, monitor

from memphis_fast._server import NatsServer
from memphis_fast.exceptions import MemphisConnectError

pytestmark = pytest.mark.timeout(30)

Factory = Callable[..., NatsServer]

USERS = """
authorization {
  users: [
    %s
  ]
}
"""


def users(*pairs: tuple[str, str]) -> str:
    return MONITORING + "\n" + USERS % "\n    ".join(f'{{user: "{u}", password: "{p}"}}' for u, p in pairs)


async def connz(srv: NatsServer) -> list[dict[str, object]]:
    """Every client connection that sent CONNECT, open or closed, oldest first. (The server
    fixture's own readiness probe connects without CONNECT; it has no ``lang``.)"""
    body = await monitor(srv, "/connz?state=all&auth=true&sort=cid")
    conns: list[dict[str, object]] = body.get("connections") or []
    return sorted((c for c in conns if "lang" in c), key=lambda c: int(str(c["cid"])))


async def test_token_auth(nats_server_factory: Factory, connect: Connect) -> None:
    srv = nats_server_factory('authorization { token: "s3cr3t-t0ken" }')
    conn = await connect(srv, token="s3cr3t-t0ken")
    await conn.flush()
    assert conn.is_connected
    with pytest.raises(MemphisConnectError) as ei:
        await connect(srv, token="wrong")
    assert "Authorization Violation" in str(ei.value)
    with pytest.raises(MemphisConnectError, match="Authorization Violation"):
        await connect(srv)


async def test_user_password_auth(nats_server_factory: Factory, connect: Connect) -> None:
    srv = nats_server_factory(users(("root", "memphis"), ("app", "p@ss word")))
    conn = await connect(srv, user="root", password="memphis", name="cid::root")
    assert conn.is_connected
    other = await connect(srv, user="app", password="p@ss word")
    assert other.is_connected
    conns = await connz(srv)
    assert sorted(str(c.get("authorized_user")) for c in conns) == ["app", "root"]
    assert any(c.get("name") == "cid::root" for c in conns)


async def test_wrong_password_gives_the_servers_reason(
    nats_server_factory: Factory, connect: Connect
) -> None:
    srv = nats_server_factory(users(("root", "memphis")))
    with pytest.raises(MemphisConnectError) as ei:
        await connect(srv, user="root", password="nope", max_reconnect=-1)
    msg = str(ei.value)
    assert msg.startswith("memphis: ")
    assert "Authorization Violation" in msg, msg
    # Wrong credentials are final: no retry loop, one refused connection.
    conns = await connz(srv)
    assert len(conns) == 1 and conns[0].get("reason") == "Authentication Failure", conns


async def test_fallback_user_after_authorization_violation(
    nats_server_factory: Factory, connect: Connect
) -> None:
    # An older broker registered users without the "$<account>" suffix (spec 2.4).
    srv = nats_server_factory(users(("root", "memphis")))
    conn = await connect(srv, user="root$1", fallback_user="root", password="memphis", name="c1::root")
    assert conn.is_connected
    conns = await connz(srv)
    seen = [(c.get("authorized_user"), c.get("reason"), c.get("name")) for c in conns]
    assert seen == [("root$1", "Authentication Failure", "c1::root"), ("root", None, "c1::root")], conns
    # The fallback sticks for reconnects: the next session goes straight to "root".
    assert conn.user == "root"


async def test_first_user_works_means_one_connection(nats_server_factory: Factory, connect: Connect) -> None:
    # memphis-py opens a throw-away probe connection first (spec 2.4); we open exactly one.
    srv = nats_server_factory(users(("root$1", "memphis"), ("root", "memphis")))
    conn = await connect(srv, user="root$1", fallback_user="root", password="memphis")
    await conn.flush()
    conns = await connz(srv)
    assert [(c.get("authorized_user"), c.get("reason")) for c in conns] == [("root$1", None)], conns


async def test_fallback_refused_too_is_final(nats_server_factory: Factory, connect: Connect) -> None:
    # Both users exist but the password is wrong for both: the first refusal is an
    # authorization violation, so the fallback is tried once, then the error is final.
    srv = nats_server_factory(users(("root$1", "memphis"), ("root", "memphis")))
    with pytest.raises(MemphisConnectError, match="Authorization Violation"):
        await connect(srv, user="root$1", fallback_user="root", password="bad")
    conns = await connz(srv)
    assert [(c.get("authorized_user"), c.get("reason")) for c in conns] == [
        ("root$1", "Authentication Failure"),
        ("root", "Authentication Failure"),
    ], conns
