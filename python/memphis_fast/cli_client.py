"""``memphis-fast pub`` and ``memphis-fast sub``: produce and consume from the command line.

Built on the public client API only (:class:`memphis_fast.Memphis`, ``Producer.produce``,
``Consumer.fetch``, ``Message.ack``). The connection options have the shape of the ``nats``
CLI's (``--server``, ``--user``, ``--password``, ``--token``, ``--tlscert``/``--tlskey``/
``--tlsca``, and ``MEMPHIS_*`` environment variables); without a server, the commands use the
``broker.json`` that ``memphis-fast broker`` writes into its data directory, and else
``127.0.0.1:6666`` as user ``root`` with password ``memphis`` (the broker's defaults).

Exit status: 0 success, 1 error, 2 usage error, 130 interrupted, 143 terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .exceptions import MemphisConnectError, MemphisError, MemphisProduceError, MemphisSchemaError

__all__ = [
    "ConnectionSettings",
    "add_command_arguments",
    "command_description",
    "command_runner",
    "resolve_connection",
    "take_extra_arguments",
]

log = logging.getLogger("memphis_fast.cli")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6666
DEFAULT_USER = "root"
DEFAULT_PASSWORD = "memphis"
INFO_FILE = "broker.json"

ENV_HELP = """\
connection (as the nats CLI; options override environment variables):
  --server / MEMPHIS_SERVER        host, host:port or nats://host:port; a comma-separated list
                                   fails over between them (default port 6666)
  --user / MEMPHIS_USER            user name (default root)
  --password / MEMPHIS_PASSWORD    password (default memphis)
  --token / MEMPHIS_TOKEN          connection token (instead of a password)
  --tlscert, --tlskey, --tlsca     mutual TLS files / MEMPHIS_TLS_CERT, MEMPHIS_TLS_KEY,
                                   MEMPHIS_TLS_CA (all three or none)
  --account-id / MEMPHIS_ACCOUNT_ID  the account id (default 1)
Without --server and MEMPHIS_SERVER, the broker started by `memphis-fast broker` is found
through the broker.json it writes into its data directory (--data-dir, else
$MEMPHIS_FAST_BROKER_DATA, else {data_dir}):
its address, user, password or token and TLS files. Without that file: 127.0.0.1:6666, user
root, password memphis (the broker's defaults).

exit status: 0 success, 1 error (broker unreachable, authentication failed, message not
stored, fewer than --count messages within --timeout), 2 usage error (bad arguments),
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

PUB_DESCRIPTION = """\
Produce messages to a station (created with default settings if it does not exist, as by
every Memphis SDK). Each message is awaited until the broker stored it (unless --nonblocking).

  memphis-fast pub orders 'hello'                  # one message
  memphis-fast pub orders '{"id": 1}' --header source=cli --msg-id order-1
  seq 100 | memphis-fast pub orders                # one message per line of stdin
  memphis-fast pub images --whole < photo.jpg      # all of stdin as one message
  memphis-fast pub orders 'n={{Count}}' --count 5 --json

MESSAGE omitted or "-": read stdin, one message per line (--lines, the default; an empty line
is skipped) or all of it as one message (--whole). "{{Count}}" in the message, --msg-id or a
header value is replaced by the message's number (1, 2, ...).

--json prints one line per stored message:
  {"index": 0, "station": "orders", "stream": "orders$1", "sequence": 42, "duplicate": false,
   "msg_id": null}
With --nonblocking there is no per-message result: one summary line {"station": ..., "produced": N}
once all messages are acknowledged. Without --json a summary goes to stderr (--quiet: nothing).
"""

SUB_DESCRIPTION = """\
Consume messages from a station and print them; each is acknowledged after it was written
(--no-ack: not acknowledged, so the group gets it again after its ack wait).

  memphis-fast sub orders                          # print until Ctrl-C
  memphis-fast sub orders --count 10 --raw         # ten payloads, one per line
  memphis-fast sub orders --timeout 2 --json       # everything there, then stop after 2 s idle
  memphis-fast sub orders --group billing          # resume the group's position

Without --group the command uses a consumer group of its own, which starts at the station's
first stored message (--last N: the last N) and is removed on exit. With --group the group
keeps its position between runs, as with any Memphis consumer.

--timeout SECONDS stops when no message arrived for that long: exit 0, unless --count was given
and fewer messages came (exit 1). --json prints one object per line:
  {"station": "orders", "partition": 1, "sequence": 1, "time_sent": "2026-...Z",
   "delivery_count": 1, "headers": {"k": "v"}, "data": "hello"}
("data_base64" instead of "data" when the payload is not UTF-8). --raw prints the payload
only, followed by a newline; the default format is "[#N] station seq S partition P", the
headers with --headers, then the payload and an empty line. Headers named $memphis* (the
protocol's own) are not shown.
"""


class UsageError(Exception):
    """Bad arguments (exit status 2)."""


class CommandError(Exception):
    """A one-line error (exit status 1)."""


# -- connection settings --------------------------------------------------------------------------
def default_data_dir() -> Path:
    """The local broker's default data directory (the broker's own rule: its config module)."""
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


@dataclass
class ConnectionSettings:
    """Where and how to connect, and where each setting came from (for error messages)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    username: str = DEFAULT_USER
    password: str = ""
    token: str = ""
    account_id: int = 1
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    timeout_ms: int = 5000
    source: str = "defaults"
    #: the pid in broker.json when that process is gone (a broker killed without clean-up)
    stale_pid: int | None = None

    @property
    def address(self) -> str:
        return self.host if ("," in self.host or ":" in self.host) else f"{self.host}:{self.port}"

    def connect_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "account_id": self.account_id,
            "timeout_ms": self.timeout_ms,
            # A command line does not wait for a broker that went away: it reports the error.
            "reconnect": False,
        }
        if self.token:
            kw["connection_token"] = self.token
        else:
            kw["password"] = self.password
        if self.cert_file or self.key_file or self.ca_file:
            kw.update(cert_file=self.cert_file, key_file=self.key_file, ca_file=self.ca_file)
        return kw


def _opt(args: argparse.Namespace, name: str, env: str) -> str | None:
    value = getattr(args, name, None)
    if value is not None:
        return str(value)
    from_env = os.environ.get(env)
    return from_env if from_env else None


def _read_info(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / INFO_FILE
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from None
    return info if isinstance(info, dict) else None


def resolve_connection(args: argparse.Namespace) -> ConnectionSettings:
    """Options, then environment variables, then the local broker's broker.json, then defaults."""
    s = ConnectionSettings()
    server = _opt(args, "server", "MEMPHIS_SERVER")
    info: dict[str, Any] | None = None
    if server is None:
        data_dir = Path(args.data_dir).expanduser() if getattr(args, "data_dir", None) else default_data_dir()
        info = _read_info(data_dir)
        if info is not None:
            host = str(info.get("host") or DEFAULT_HOST)
            if host in ("0.0.0.0", "::", ""):
                host = DEFAULT_HOST
            s.host, s.port = host, int(info.get("port") or DEFAULT_PORT)
            s.username = str(info.get("username") or DEFAULT_USER)
            if info.get("auth") == "token":
                s.token = str(info.get("token") or "")
            else:
                s.password = str(info.get("password") or DEFAULT_PASSWORD)
            if info.get("tls"):
                s.cert_file = str(info.get("tls_cert") or "")
                s.key_file = str(info.get("tls_key") or "")
                s.ca_file = str(info.get("tls_ca") or "")
            s.source = f"{data_dir / INFO_FILE}"
            if info.get("pid") is not None and not _pid_alive(info["pid"]):
                s.stale_pid = int(info["pid"])
    else:
        s.host = server
        s.source = "--server" if getattr(args, "server", None) is not None else "MEMPHIS_SERVER"
    user = _opt(args, "user", "MEMPHIS_USER")
    if user is not None:
        s.username = user
    token = _opt(args, "token", "MEMPHIS_TOKEN")
    password = _opt(args, "password", "MEMPHIS_PASSWORD")
    if token is not None and password is not None:
        raise UsageError("give either a token (--token/MEMPHIS_TOKEN) or a password, not both")
    if token is not None:
        s.token, s.password = token, ""
    elif password is not None:
        s.password, s.token = password, ""
    elif not s.token and not s.password:
        s.password = DEFAULT_PASSWORD
    account = _opt(args, "account_id", "MEMPHIS_ACCOUNT_ID")
    if account is not None:
        try:
            s.account_id = int(account)
        except ValueError:
            raise UsageError(f"invalid account id {account!r}") from None
    for attr, opt, env in (
        ("cert_file", "tlscert", "MEMPHIS_TLS_CERT"),
        ("key_file", "tlskey", "MEMPHIS_TLS_KEY"),
        ("ca_file", "tlsca", "MEMPHIS_TLS_CA"),
    ):
        value = _opt(args, opt, env)
        if value is not None:
            setattr(s, attr, value)
    tls = [s.cert_file, s.key_file, s.ca_file]
    if any(tls) and not all(tls):
        raise UsageError("TLS needs all of --tlscert, --tlskey and --tlsca")
    for path in tls:
        if path and not Path(path).is_file():
            raise UsageError(f"TLS file not found: {path}")
    s.timeout_ms = int(float(getattr(args, "connect_timeout", 5.0)) * 1000)
    return s


def _add_connection_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection (see below for environment variables and defaults)")
    g.add_argument("-s", "--server", metavar="URL", help="broker address(es), comma-separated")
    g.add_argument("--user", help="user name (default root)")
    g.add_argument("--password", help="password (default memphis)")
    g.add_argument("--token", help="connection token (instead of a password)")
    g.add_argument("--tlscert", metavar="FILE", help="TLS client certificate (PEM)")
    g.add_argument("--tlskey", metavar="FILE", help="TLS client key (PEM)")
    g.add_argument("--tlsca", metavar="FILE", help="TLS CA certificate (PEM)")
    g.add_argument("--account-id", metavar="N", help="account id (default 1)")
    g.add_argument(
        "--connect-timeout", type=_positive_float, default=5.0, metavar="SECONDS", help="default 5"
    )
    g.add_argument("--data-dir", metavar="DIR", help="the local broker's data directory, for broker.json")
    p.add_argument("-v", "--verbose", action="store_true", help="log the client's debug messages")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


# -- the commands' arguments ----------------------------------------------------------------------
def command_description(name: str) -> str:
    return PUB_DESCRIPTION if name == "pub" else SUB_DESCRIPTION


def add_command_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.epilog = ENV_HELP.format(data_dir=default_data_dir())
    p.add_argument("station", metavar="STATION", help="station name")
    if name == "pub":
        p.add_argument("message", metavar="MESSAGE", nargs="?", help='the payload; omitted or "-": stdin')
        mode = p.add_mutually_exclusive_group()
        mode.add_argument(
            "--lines",
            dest="stdin_mode",
            action="store_const",
            const="lines",
            help="stdin: one message per line (default)",
        )
        mode.add_argument(
            "--whole",
            dest="stdin_mode",
            action="store_const",
            const="whole",
            help="stdin: all of it, one message",
        )
        p.add_argument(
            "--count", type=_positive_int, default=1, metavar="N", help="send each message N times"
        )
        p.add_argument(
            "-H", "--header", action="append", default=[], metavar="KEY=VALUE", help="a header (repeatable)"
        )
        p.add_argument("--msg-id", help="de-duplication id (the broker stores one message per id)")
        part = p.add_mutually_exclusive_group()
        part.add_argument("--partition-key", metavar="KEY", help="route by this key")
        part.add_argument(
            "--partition-number", type=_positive_int, metavar="N", help="route to this partition"
        )
        p.add_argument(
            "--nonblocking", action="store_true", help="pipeline the messages; wait for all acks at the end"
        )
        p.add_argument(
            "--ack-wait",
            type=_positive_float,
            default=15.0,
            metavar="SECONDS",
            help="ack timeout (default 15)",
        )
        p.add_argument("--producer", default="memphis-fast-cli", metavar="NAME", help="producer name")
        p.add_argument("--json", action="store_true", help="print the result of each message as JSON")
        p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    else:
        p.add_argument("-g", "--group", help="consumer group (default: one of its own, removed on exit)")
        p.add_argument("--name", help="consumer name (default cli-<random>)")
        p.add_argument("--count", type=_positive_int, metavar="N", help="stop after N messages")
        p.add_argument(
            "--timeout",
            type=_positive_float,
            metavar="SECONDS",
            help="stop when no message came for this long",
        )
        p.add_argument("--no-ack", action="store_true", help="do not acknowledge the messages")
        p.add_argument("--headers", action="store_true", help="print the headers too")
        fmt = p.add_mutually_exclusive_group()
        fmt.add_argument("--json", action="store_true", help="one JSON object per line")
        fmt.add_argument("--raw", action="store_true", help="the payload only, one per line")
        p.add_argument(
            "--last", type=_positive_int, metavar="N", help="a new group starts with the last N messages"
        )
        p.add_argument(
            "--batch-size",
            type=_positive_int,
            default=100,
            metavar="N",
            help="messages per fetch (default 100)",
        )
        p.add_argument(
            "--ack-wait",
            type=_positive_float,
            default=30.0,
            metavar="SECONDS",
            help="the group's ack wait (each member that joins sets it): an unacknowledged message is "
            "redelivered after it (default 30)",
        )
        p.add_argument(
            "--max-deliveries",
            type=_positive_int,
            default=2,
            metavar="N",
            help="deliveries before a message goes to the dead-letter station (a new group's setting; default 2)",
        )
    _add_connection_arguments(p)


def take_extra_arguments(args: argparse.Namespace, extras: list[str]) -> bool:
    """``pub STATION -q MESSAGE``: argparse leaves MESSAGE unparsed when an option comes
    between it and STATION; take it (one, not an option). False: a usage error."""
    if args.command != "pub" or args.message is not None or len(extras) != 1:
        return False
    value = extras[0]
    if value != "-" and value.startswith("-"):
        return False
    args.message = value
    return True


def command_runner(name: str) -> Callable[[argparse.Namespace], int]:
    return run_pub if name == "pub" else run_sub


# -- running ----------------------------------------------------------------------------------------
def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="memphis-fast: %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[len("memphis: ") :] if text.startswith("memphis: ") else text


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError):
        return True  # unknown: do not claim anything
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _run(command: str, args: argparse.Namespace, body: Callable[[Any], Any]) -> int:
    """Connect, run ``body(memphis)``, close; map errors to one stderr line and an exit status."""
    _setup_logging(bool(getattr(args, "verbose", False)))
    prefix = f"memphis-fast {command}: error:"
    try:
        settings = resolve_connection(args)
    except UsageError as exc:
        sys.stderr.write(f"memphis-fast {command}: usage error: {exc}\n")
        return EXIT_USAGE
    except CommandError as exc:
        sys.stderr.write(f"{prefix} {exc}\n")
        return EXIT_ERROR

    async def go() -> int:
        from .memphis import Memphis

        # SIGTERM cancels the command, so that it cleans up (its own consumer group) and exits 143.
        task = asyncio.current_task()
        if task is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        memphis = Memphis()
        try:
            await memphis.connect(**settings.connect_kwargs())
        except MemphisConnectError as exc:
            hint = ""
            unreachable = any(
                t in str(exc) for t in ("Connect call failed", "Connection refused", "timed out", "timeout")
            )
            if settings.stale_pid is not None:
                hint = (
                    f" (the broker that wrote {settings.source} (pid {settings.stale_pid}) is not running; "
                    "start one with `memphis-fast broker`)"
                )
            elif unreachable and (settings.source == "defaults" or settings.source.endswith(INFO_FILE)):
                hint = " (is the broker running? start one with `memphis-fast broker`)"
            elif unreachable:
                hint = " (is the broker running, and is this its address?)"
            raise CommandError(
                f"cannot connect to the broker at {settings.address} ({settings.source}): "
                f"{_one_line(exc)}{hint}"
            ) from None
        try:
            code: int = await body(memphis)
        finally:
            try:
                await memphis.close()
            except MemphisError as exc:
                sys.stderr.write(f"{prefix} {_one_line(exc)}\n")
                code = EXIT_ERROR
        return code

    try:
        return asyncio.run(go())
    except UsageError as exc:
        sys.stderr.write(f"memphis-fast {command}: usage error: {exc}\n")
        return EXIT_USAGE
    except CommandError as exc:
        sys.stderr.write(f"{prefix} {exc}\n")
        return EXIT_ERROR
    except MemphisError as exc:
        sys.stderr.write(f"{prefix} {_one_line(exc)}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"memphis-fast {command}: interrupted\n")
        return EXIT_INTERRUPTED
    except asyncio.CancelledError:
        sys.stderr.write(f"memphis-fast {command}: terminated\n")
        return EXIT_TERMINATED


# -- pub ------------------------------------------------------------------------------------------
def _parse_headers(specs: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for spec in specs:
        sep = "=" if "=" in spec else ":"
        key, found, value = spec.partition(sep)
        key = key.strip()
        if not found or not key:
            raise UsageError(f"a header is KEY=VALUE, not {spec!r}")
        headers[key] = value
    return headers


class _StdinReader:
    """Reads a binary stream in a daemon thread, a bounded number of chunks ahead, so that the
    event loop (and with it the connection: pings, acknowledgements) keeps running while stdin
    is idle (``tail -f log | memphis-fast pub st``), and a stop never waits for it."""

    CHUNK = 1 << 16
    AHEAD = 8

    def __init__(self, stream: IO[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._room = threading.Semaphore(self.AHEAD)
        threading.Thread(target=self._run, name="memphis-fast-stdin", daemon=True).start()

    def _run(self) -> None:
        read = getattr(self._stream, "read1", self._stream.read)
        while True:
            self._room.acquire()
            try:
                chunk: bytes | BaseException = read(self.CHUNK)
            except BaseException as exc:  # handed to the loop, which reports it
                chunk = exc
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, chunk)
            except RuntimeError:  # the loop is closed: the command is over
                return
            if not isinstance(chunk, bytes) or not chunk:
                return

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            self._room.release()
            if isinstance(item, BaseException):
                raise CommandError(f"cannot read stdin: {item}")
            if not item:
                return
            yield item


async def _stdin_messages(whole: bool, stream: IO[bytes]) -> AsyncIterator[bytes]:
    """Messages from stdin: all of it as one (``whole``), or one per line (an empty line is
    skipped; ``\\n`` and ``\\r\\n`` are stripped)."""
    reader = _StdinReader(stream, asyncio.get_running_loop())
    if whole:
        yield b"".join([chunk async for chunk in reader.chunks()])
        return
    rest = b""
    async for chunk in reader.chunks():
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                yield line
    if rest.endswith(b"\r"):
        rest = rest[:-1]
    if rest:
        yield rest


async def _one(payload: bytes) -> AsyncIterator[bytes]:
    yield payload


def _fill(template: str | None, n: int) -> str | None:
    if template is None or "{{" not in template:
        return template
    return template.replace("{{Count}}", str(n)).replace("{{count}}", str(n))


def run_pub(args: argparse.Namespace) -> int:
    try:
        headers = _parse_headers(args.header)
    except UsageError as exc:
        sys.stderr.write(f"memphis-fast pub: usage error: {exc}\n")
        return EXIT_USAGE
    from_stdin = args.message is None or args.message == "-"
    if not from_stdin and args.stdin_mode is not None:
        sys.stderr.write("memphis-fast pub: usage error: --lines/--whole apply to stdin, not to MESSAGE\n")
        return EXIT_USAGE
    if from_stdin and sys.stdin.isatty() and not args.quiet:
        sys.stderr.write("memphis-fast pub: reading messages from stdin (one per line; Ctrl-D ends)\n")

    def source() -> AsyncIterator[bytes]:
        if from_stdin:
            return _stdin_messages(args.stdin_mode == "whole", sys.stdin.buffer)
        return _one(str(args.message).encode("utf-8", "surrogateescape"))

    async def body(memphis: Any) -> int:
        producer = await memphis.producer(args.station, args.producer)
        out = sys.stdout
        produced = duplicates = 0
        n = 0
        try:
            async for payload in source():
                for _ in range(args.count):
                    n += 1
                    data: bytes = payload
                    if b"{{" in payload:
                        data = payload.replace(b"{{Count}}", str(n).encode()).replace(
                            b"{{count}}", str(n).encode()
                        )
                    hdrs = {k: _fill(v, n) or "" for k, v in headers.items()} if headers else None
                    try:
                        result = await producer.produce(
                            data,
                            ack_wait_sec=args.ack_wait,
                            headers=hdrs,
                            nonblocking=args.nonblocking,
                            msg_id=_fill(args.msg_id, n),
                            producer_partition_key=args.partition_key,
                            producer_partition_number=args.partition_number or -1,
                        )
                    except MemphisSchemaError as exc:
                        raise CommandError(
                            f"message {n} does not match the schema of station {args.station}: {_one_line(exc)}"
                        ) from None
                    except MemphisProduceError as exc:
                        raise CommandError(f"message {n} was not stored: {_one_line(exc)}") from None
                    produced += 1
                    if result is not None:
                        duplicates += bool(result.duplicate)
                        if args.json:
                            out.write(
                                json.dumps(
                                    {
                                        "index": n - 1,
                                        "station": args.station,
                                        "stream": result.stream,
                                        "sequence": result.sequence,
                                        "duplicate": bool(result.duplicate),
                                        "msg_id": result.msg_id,
                                    }
                                )
                                + "\n"
                            )
                            out.flush()
            if args.nonblocking:
                try:
                    await producer.flush()
                except MemphisProduceError as exc:
                    raise CommandError(
                        f"{len(exc.failures)} of {produced} message(s) were not stored: {_one_line(exc)}"
                    ) from None
                if args.json:
                    out.write(json.dumps({"station": args.station, "produced": produced}) + "\n")
        finally:
            try:
                await producer.destroy(timeout_retries=1)
            except MemphisError as exc:
                log.debug("producer not destroyed: %s", exc)
        if produced == 0:
            raise CommandError("no message to produce (stdin was empty)")
        if not args.json and not args.quiet:
            dup = f" ({duplicates} duplicate(s) not stored again)" if duplicates else ""
            sys.stderr.write(f"produced {produced} message(s) to station {args.station}{dup}\n")
        return EXIT_OK

    return _run("pub", args, body)


# -- sub ------------------------------------------------------------------------------------------
def _user_headers(msg: Any) -> dict[str, str]:
    headers = msg.get_headers() or {}
    return {k: v for k, v in headers.items() if not k.startswith("$memphis")}


def _json_record(station: str, msg: Any) -> dict[str, Any]:
    data = bytes(msg.data)
    sent = msg.get_timesent()
    record: dict[str, Any] = {
        "station": station,
        "partition": msg.partition,
        "sequence": msg.get_sequence_number(),
        "time_sent": sent.isoformat().replace("+00:00", "Z") if sent is not None else None,
        "delivery_count": msg.get_delivery_count(),
        "headers": _user_headers(msg),
    }
    try:
        record["data"] = data.decode("utf-8")
    except UnicodeDecodeError:
        record["data_base64"] = base64.b64encode(data).decode("ascii")
    return record


def _write_message(args: argparse.Namespace, out: IO[bytes], number: int, msg: Any) -> None:
    if args.raw:
        out.write(bytes(msg.data) + b"\n")
    elif args.json:
        out.write(json.dumps(_json_record(args.station, msg), ensure_ascii=False).encode() + b"\n")
    else:
        lines = [f"[#{number}] {args.station} seq {msg.get_sequence_number()} partition {msg.partition}"]
        if args.headers:
            lines.extend(f"{k}: {v}" for k, v in _user_headers(msg).items())
        out.write(("\n".join(lines) + "\n").encode() + bytes(msg.data) + b"\n\n")


def run_sub(args: argparse.Namespace) -> int:
    own_group = args.group is None
    name = args.name or f"cli-{secrets.token_hex(4)}"
    group = args.group or name
    wait_ms = 1000 if args.timeout is None else max(100, min(1000, int(args.timeout * 1000)))

    async def body(memphis: Any) -> int:
        consumer = await memphis.consumer(
            args.station,
            name,
            consumer_group=group,
            batch_size=min(args.batch_size, 5000),
            batch_max_time_to_wait_ms=wait_ms,
            max_ack_time_ms=int(args.ack_wait * 1000),
            max_msg_deliveries=args.max_deliveries,
            last_messages=args.last if args.last is not None else -1,
        )
        out = sys.stdout.buffer
        received = 0
        idle_since = time.monotonic()
        code = EXIT_OK
        try:
            while args.count is None or received < args.count:
                want = args.batch_size if args.count is None else min(args.batch_size, args.count - received)
                msgs = await consumer.fetch(min(want, 5000))
                if not msgs:
                    if args.timeout is not None and time.monotonic() - idle_since >= args.timeout:
                        if args.count is not None:
                            sys.stderr.write(
                                f"memphis-fast sub: error: timed out after {args.timeout:g} s without a "
                                f"message: received {received} of {args.count}\n"
                            )
                            code = EXIT_ERROR
                        break
                    continue
                try:
                    for m in msgs:
                        received += 1
                        _write_message(args, out, received, m)
                    out.flush()
                except BrokenPipeError:
                    # The reader went away: what it did not get stays unacknowledged.
                    _silence_stdout()
                    return EXIT_ERROR
                if not args.no_ack:
                    for m in msgs:
                        await m.ack()
                idle_since = time.monotonic()
        finally:
            if own_group:
                try:
                    await consumer.destroy(timeout_retries=1)
                except MemphisError as exc:
                    log.debug("consumer not destroyed: %s", exc)
        return code

    return _run("sub", args, body)


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so that the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except OSError:
        pass
