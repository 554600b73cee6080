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
MIB = 1024 * 1024
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
    cluster: int = 1  # 1: one nats-server; 3 or 5: a JetStream cluster of that many nodes
    node_ports: list[int] | None = None  # cluster mode: every node's client port (default: --port, +1, ...)
    max_memory_store_mb: int | None = None  # per node; None: derived from the machine's RAM
    max_file_store_mb: int | None = None  # per node; None: derived from the free disk space
    node_restart_delay: float = 1.0  # cluster mode: a node that exits is restarted after this
    metadata_reserve_mb: int = 64  # kept for the broker's own streams (metadata, DLS) on each node
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
        if self.max_msg_size_mb is not None and not 0 < self.max_msg_size_mb <= 64:
            raise ConfigError(f"--max-msg-size-mb must be between 1 and 64, not {self.max_msg_size_mb}")
        if self.cluster not in (1, 3, 5):
            raise ConfigError(f"--cluster must be 3 or 5 (nodes of one JetStream cluster), not {self.cluster}")
        if self.cluster > 1:
            if self.auth != "password":
                raise ConfigError("--cluster needs password mode (the default), not a connection token")
            if self.node_ports is not None:
                if len(self.node_ports) != self.cluster or len(set(self.node_ports)) != self.cluster:
                    raise ConfigError(f"--node-ports needs {self.cluster} different ports")
                for port in self.node_ports:
                    if not 0 < port < 65536:
                        raise ConfigError(f"invalid port {port}")
            elif self.port != -1 and self.port + self.cluster - 1 >= 65536:
                raise ConfigError(f"invalid port {self.port}: the nodes use {self.cluster} ports from it")
        if self.metadata_reserve_mb < 1:
            raise ConfigError("--metadata-reserve-mb must be at least 1")
        for what, value in (("memory", self.max_memory_store_mb), ("file", self.max_file_store_mb)):
            if value is not None and value < 2 * self.metadata_reserve_mb:
                raise ConfigError(
                    f"--max-{what}-store-mb must be at least twice --metadata-reserve-mb "
                    f"({2 * self.metadata_reserve_mb})"
                )

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert)

    def user_types(self) -> dict[str, str]:
        """The control plane's user table (docs/protocol.md §11.4): root plus the application users."""
        users = {self.username.lower(): "root"}
        for name in self.users:
            users[name.lower()] = "application"
        return users

    def store_limits(self, data_dir: Path | None = None) -> tuple[int, int]:
        """JetStream's memory and file store limits per node, in MiB: the options, or defaults
        from the machine (a quarter of the RAM, three quarters of the free disk space, shared by
        the nodes)."""
        memory = self.max_memory_store_mb
        if memory is None:
            memory = max(2 * self.metadata_reserve_mb, min(_total_ram_mb() // 4, 4096) // self.cluster)
        file = self.max_file_store_mb
        if file is None:
            free = _free_disk_mb(data_dir or default_data_dir())
            file = max(2 * self.metadata_reserve_mb, free * 3 // 4 // self.cluster)
        return memory, file

    def _secrets(self) -> list[tuple[str, str, str]]:
        """(user, environment variable, password) for every password of the configuration."""
        users: list[tuple[str, str]] = []
        if self.auth == "password":
            users = [(f"{self.username}$1", self.password), (self.username, self.password)]
            for name, password in self.users.items():
                # "<user>$<account id>" is what SDKs send; the plain name is their fallback (§2.4).
                users += [(f"{name}$1", password), (name, password)]
            users.append((INTERNAL_USER, self.internal_password))
            users.append((SYSTEM_USER, self.system_password))
        else:
            assert self.token is not None
            users = [("", self.token)]
        return [(user, f"MEMPHIS_FAST_SECRET_{i}", pw) for i, (user, pw) in enumerate(users)]

    def nats_env(self) -> dict[str, str]:
        """The environment nats-server needs for :meth:`nats_config`: the passwords (as config
        string literals: nats-server parses a variable's value), never written to a file."""
        return {var: _q(pw) for _, var, pw in self._secrets()}

    def nats_config(self, limits: tuple[int, int] | None = None) -> str:
        """Configuration appended after the ``listen``/``jetstream`` lines of :class:`NatsServer`.

        Passwords and the token are ``$MEMPHIS_FAST_SECRET_<n>`` references resolved from the
        environment (:meth:`nats_env`), so a configuration file left behind holds no secret.
        ``limits`` (memory, file; MiB per node) caps the Memphis account's JetStream use at the
        node's store minus :attr:`metadata_reserve_mb`: user data can never take the room the
        broker's own streams (which reserve theirs with ``max_bytes``) need.
        """
        lines: list[str] = []
        if self.max_msg_size_mb:
            lines.append(f"max_payload: {self.max_msg_size_mb * 1024 * 1024}")
        secrets_ = self._secrets()
        if self.auth == "password":
            entries = "\n".join(
                f"      {{user: {_q(u)}, password: ${var}}}" for u, var, _ in secrets_ if u != SYSTEM_USER
            )
            sys_var = next(var for u, var, _ in secrets_ if u == SYSTEM_USER)
            js = "jetstream: enabled"
            if limits is not None:
                memory, file = limits
                reserve = self.metadata_reserve_mb
                # In bytes: nats-server reads "M" as 10^6, the options are MiB.
                js = f"jetstream: {{max_mem: {(memory - reserve) * MIB}, max_file: {(file - reserve) * MIB}}}"
            lines.append(
                "accounts {\n"
                f"  {_q(ACCOUNT)}: {{\n"
                f"    {js}\n"
                f"    users: [\n{entries}\n    ]\n"
                "  }\n"
                f"  {_q(SYSTEM_ACCOUNT)}: {{\n"
                f"    users: [ {{user: {_q(SYSTEM_USER)}, password: ${sys_var}}} ]\n"
                "  }\n"
                "}\n"
                f"system_account: {_q(SYSTEM_ACCOUNT)}"
            )
        else:
            lines.append(f"authorization {{\n  token: ${secrets_[0][1]}\n}}")
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


def _total_ram_mb() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))
    except (ValueError, OSError, AttributeError):
        return 4096


def _free_disk_mb(path: Path) -> int:
    import shutil

    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(shutil.disk_usage(probe).free // (1024 * 1024))
    except OSError:
        return 10240
