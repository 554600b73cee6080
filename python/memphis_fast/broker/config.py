"""Broker settings and the nats-server configuration generated from them."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .._subjects import GLOBAL_ACCOUNT

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_PORT",
    "DEFAULT_TOKEN",
    "BrokerConfig",
    "ConfigError",
    "default_data_dir",
]

DEFAULT_PORT = 6666
DEFAULT_PASSWORD = "memphis"  # the broker's ROOT_PASSWORD default (docs/protocol.md §2.3)
# The broker has no default connection token (docs/protocol.md §13.1); its development configurations use
# "memphis", and so does this broker when token mode is chosen without a token.
DEFAULT_TOKEN = "memphis"
ACCOUNT = GLOBAL_ACCOUNT
SYSTEM_ACCOUNT = "$SYS"
INTERNAL_USER = "$$memphis"
SYSTEM_USER = "$$sys"


class ConfigError(ValueError):
    """Invalid broker settings (reported without a traceback)."""


def default_data_dir() -> Path:
    """A per-user data directory: $MEMPHIS_FAST_BROKER_DATA, else the platform's user data dir."""
    env = os.environ.get("MEMPHIS_FAST_BROKER_DATA")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "memphis-fast" / "broker"


def _q(value: str) -> str:
    """A nats-server config string literal (its parser knows only \\xXX, \\t, \\n, \\r, \\" and \\\\)."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch in "\t\n\r":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)  # UTF-8 as it is
    return '"' + "".join(out) + '"'


@dataclass
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path | None = None  # None: default_data_dir(), or a temporary one with memory=True
    memory: bool = False
    auth: str = "password"  # "password" or "token"
    username: str = "root"
    password: str = DEFAULT_PASSWORD
    token: str | None = None
    users: dict[str, str] = field(default_factory=dict)  # extra application users: name -> password
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    tls_client_cert: str | None = None  # what the control plane presents; default tls_cert
    tls_client_key: str | None = None
    inactive_ttl: float = 7200.0
    dls_retention: float = 3 * 3600.0
    max_msg_size_mb: int | None = None
    internal_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    system_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def validate(self) -> None:
        if self.auth not in ("password", "token"):
            raise ConfigError(f"auth must be 'password' or 'token', not {self.auth!r}")
        if self.auth == "token":
            if self.token is None:
                self.token = DEFAULT_TOKEN
            if self.token == "":
                raise ConfigError("the connection token can not be empty")
        elif self.password == "":
            raise ConfigError("the root password can not be empty")
        tls = [self.tls_cert, self.tls_key, self.tls_ca]
        if any(tls) and not all(tls):
            # Memphis clients only do mutual TLS (docs/protocol.md §2.6): all three are needed.
            raise ConfigError("TLS needs all of --tls-cert, --tls-key and --tls-ca")
        for path in (*tls, self.tls_client_cert, self.tls_client_key):
            if path and not Path(path).is_file():
                raise ConfigError(f"TLS file not found: {path}")
        if not (self.port == -1 or 0 < self.port < 65536):
            raise ConfigError(f"invalid port {self.port}")
        names = {self.username.lower()}
        for name in self.users:
            if not name or "$" in name or "::" in name or name.lower() in names:
                raise ConfigError(f"invalid or duplicate user name {name!r}")
            names.add(name.lower())
        if self.inactive_ttl < 0 or self.dls_retention <= 0:
            raise ConfigError("--inactive-ttl must be >= 0 and --dls-retention > 0")

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert)

    def user_types(self) -> dict[str, str]:
        """The control plane's user table (docs/protocol.md §11.4): root plus the application users."""
        users = {self.username.lower(): "root"}
        for name in self.users:
            users[name.lower()] = "application"
        return users

    def nats_config(self) -> str:
        """Configuration appended after the ``listen``/``jetstream`` lines of :class:`NatsServer`."""
        lines: list[str] = []
        if self.max_msg_size_mb:
            lines.append(f"max_payload: {self.max_msg_size_mb * 1024 * 1024}")
        if self.auth == "password":
            users = [(f"{self.username}$1", self.password), (self.username, self.password)]
            for name, password in self.users.items():
                # "<user>$<account id>" is what SDKs send; the plain name is their fallback (§2.4).
                users += [(f"{name}$1", password), (name, password)]
            users.append((INTERNAL_USER, self.internal_password))
            entries = "\n".join(f"      {{user: {_q(u)}, password: {_q(p)}}}" for u, p in users)
            lines.append(
                "accounts {\n"
                f"  {_q(ACCOUNT)}: {{\n"
                "    jetstream: enabled\n"
                f"    users: [\n{entries}\n    ]\n"
                "  }\n"
                f"  {_q(SYSTEM_ACCOUNT)}: {{\n"
                f"    users: [ {{user: {_q(SYSTEM_USER)}, password: {_q(self.system_password)}}} ]\n"
                "  }\n"
                "}\n"
                f"system_account: {_q(SYSTEM_ACCOUNT)}"
            )
        else:
            assert self.token is not None
            lines.append(f"authorization {{\n  token: {_q(self.token)}\n}}")
            # nats-server cannot combine a token with accounts, so there is no system user to
            # receive connect/disconnect events: the control plane polls /connz on this private
            # loopback monitoring port instead.
            lines.append('http: "127.0.0.1:-1"')
        if self.tls_enabled:
            lines.append(
                "tls {\n"
                f"  cert_file: {_q(str(Path(self.tls_cert or '').resolve()))}\n"
                f"  key_file: {_q(str(Path(self.tls_key or '').resolve()))}\n"
                f"  ca_file: {_q(str(Path(self.tls_ca or '').resolve()))}\n"
                "  verify: true\n"
                "  timeout: 5\n"
                "}"
            )
        return "\n".join(lines)
