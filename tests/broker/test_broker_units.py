"""Broker pieces that need no running broker."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2

from memphis_fast.broker.base import ReplyError, Request
from memphis_fast.broker.config import BrokerConfig, ConfigError
from memphis_fast.broker.connections import parse_connection_name
from memphis_fast.broker.jsapi import parse_headers
from memphis_fast.broker.names import NameError_, internal_name, kv_key, stream_name, validate_name
from memphis_fast.broker.schemas import first_message_name


def test_internal_names() -> None:
    assert internal_name("Orders.EU") == "orders#eu"
    assert stream_name("Orders.EU", 2) == "orders#eu$2"
    assert stream_name("legacy", 0) == "legacy"


def test_validate_name_lower_cases() -> None:
    assert validate_name("ABC.d-e_f", "Station") == "abc.d-e_f"
    with pytest.raises(NameError_, match="^Consumer name can not be empty$"):
        validate_name("", "Consumer")


def test_kv_keys_are_valid_and_distinct() -> None:
    keys = {kv_key("schema", n) for n in ("a.b", "a_b", "a=2Eb", "A.B", "a..b", "Ünï", "")}
    assert len(keys) == 7
    assert all(all(c.isalnum() or c in "-_=." for c in k) for k in keys)
    assert kv_key("station", "orders.eu") == "station.orders=2Eeu"


def test_connection_names() -> None:
    assert parse_connection_name("7f6d::root") == "7f6d"
    assert parse_connection_name("plain nats") is None
    assert parse_connection_name("a::b::c") is None
    assert parse_connection_name("::root") is None
    assert parse_connection_name(None) is None


def test_parse_headers() -> None:
    raw = b"NATS/1.0\r\n$memphis_producedBy: p\r\nk: 1\r\nk: 2\r\n\r\n"
    assert parse_headers(raw) == {"$memphis_producedBy": "p", "k": "1 2"}
    assert parse_headers(b"") == {}


def test_first_message_name() -> None:
    fds = descriptor_pb2.FileDescriptorSet()
    f = fds.file.add(name="s_1.proto", package="pkg")
    f.message_type.add(name="First").field.add(name="x", number=1, type=5)
    f.message_type.add(name="Second")
    assert first_message_name(fds.SerializeToString()) == "First"
    assert first_message_name(b"") == ""


def test_request_fields_like_go() -> None:
    req = Request(b'{"Name": "upper", "name": "lower", "Partitions_Number": 3, "flag": true}')
    assert req.get_str("name") == "lower"  # an exact key wins over a case-insensitive one
    assert req.get_int("partitions_number") == 3
    assert req.get_bool("flag") is True
    assert req.get_str("missing", "d") == "d"
    with pytest.raises(ReplyError, match="field partitions_number must be a string"):
        req.get_str("partitions_number")
    with pytest.raises(ReplyError, match="invalid request"):
        Request(b"[1]")


def test_default_connection_token() -> None:
    """§13.1: the broker has no default token; token mode without one uses "memphis", as the
    broker's development configurations do."""
    cfg = BrokerConfig(auth="token")
    cfg.validate()
    assert cfg.token == "memphis"
    assert "token: $MEMPHIS_FAST_SECRET_0" in cfg.nats_config()
    assert cfg.nats_env() == {"MEMPHIS_FAST_SECRET_0": '"memphis"'}


def test_password_mode_config() -> None:
    cfg = BrokerConfig(password='p"w$x', users={"app": "secret"})
    cfg.validate()
    text = cfg.nats_config()
    for user in ('"root$1"', '"root"', '"app$1"', '"app"', '"$$memphis"', '"$$sys"'):
        assert f"user: {user}" in text
    # Passwords are references to the environment (never in a file); the values are config
    # string literals, since nats-server parses a variable's value.
    assert "p\"w$x" not in text and cfg.internal_password not in text and cfg.system_password not in text
    env = cfg.nats_env()
    assert '"p\\"w$x"' in env.values()
    assert f'"{cfg.internal_password}"' in env.values()
    for var in env:
        assert f"password: ${var}" in text
    assert 'system_account: "$SYS"' in text
    assert cfg.user_types() == {"root": "root", "app": "application"}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"tls_cert": "x"}, "TLS needs all of"),
        ({"port": 0}, "invalid port"),
        ({"auth": "kerberos"}, "auth must be"),
        ({"users": {"root": "x"}}, "duplicate user name"),
        ({"password": ""}, "root password can not be empty"),
        ({"cluster": 2}, "--cluster must be 3 or 5"),
        ({"cluster": 3, "auth": "token"}, "--cluster needs password mode"),
        ({"cluster": 3, "node_ports": [7000, 7000, 7001]}, "--node-ports needs 3 different ports"),
        ({"cluster": 3, "port": 65534}, "the nodes use 3 ports from it"),
        ({"max_msg_size_mb": 0}, "--max-msg-size-mb must be between 1 and 64"),
        ({"metadata_reserve_mb": 0}, "--metadata-reserve-mb must be at least 1"),
    ],
)
def test_config_errors(kwargs: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        BrokerConfig(**kwargs).validate()  # type: ignore[arg-type]
