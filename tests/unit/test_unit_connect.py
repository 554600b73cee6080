"""Getting a connection, without a server: TLS files named in the errors, server lists, and no
secrets in the options' repr, inbox prefixes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memphis_fast._connect import ConnectOptions, Server, new_inbox_prefix, parse_servers, tls_context
from memphis_fast.exceptions import MemphisConnectError


def test_a_missing_tls_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope-ca.pem"
    with pytest.raises(MemphisConnectError) as ei:
        tls_context(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"), str(missing))
    assert str(missing) in ei.value.message
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    with pytest.raises(MemphisConnectError) as ei:
        tls_context(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"), str(ca))
    assert str(ca) in ei.value.message


def test_tls_needs_all_three_files_or_none() -> None:
    assert tls_context("", "", "") is None
    with pytest.raises(MemphisConnectError, match="key file"):
        tls_context("c.pem", "", "ca.pem")


def test_server_lists() -> None:
    assert parse_servers("h1:6666, h2:6667", 6666) == [Server("h1", 6666), Server("h2", 6667)]
    assert parse_servers(["nats://h1", "[::1]:7000"], 4222) == [Server("h1", 4222), Server("::1", 7000)]
    for bad in ("", "h:0", "h:x", "[::1"):
        with pytest.raises(MemphisConnectError):
            parse_servers(bad, 6666)


def test_secrets_stay_out_of_the_repr() -> None:
    opts = ConnectOptions(servers=[Server("h", 1)], user="root$1", password="s3cret", token="t0ken")
    text = repr(opts)
    assert "s3cret" not in text and "t0ken" not in text and "root$1" in text


def test_inbox_prefixes_are_short_random_subject_tokens() -> None:
    prefixes = {new_inbox_prefix() for _ in range(2000)}
    assert len(prefixes) == 2000, "no two alike"
    for p in prefixes:
        assert re.fullmatch(r"_INBOX\.[A-Za-z0-9]{16}", p), p
    # every character of the alphabet turns up somewhere: 62 symbols, not 16 (hex)
    assert len(set("".join(p[7:] for p in prefixes))) == 62
    a, b = ConnectOptions(servers=[Server("h", 1)]), ConnectOptions(servers=[Server("h", 1)])
    assert a.inbox_prefix != b.inbox_prefix, "one per connection"
