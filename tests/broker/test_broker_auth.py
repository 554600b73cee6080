"""Authentication modes: connection token, application users, mutual TLS."""

from __future__ import annotations

import datetime
import gc
import ipaddress
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_helpers import ClientLib, R, data, eventually, fetch_n, quiet_nats_log
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from test_broker_connections import client_process, states

from memphis_fast.broker import LocalBroker

pytestmark = [pytest.mark.timeout(60)]

# nats-py leaves the socket of a refused connection open; collect it while the warning is ignored.
_refused_socket = pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning")


async def roundtrip(conn: Any, station: str) -> None:
    await conn.station(station, timeout_retries=R)
    producer = await conn.producer(station, "p", timeout_retries=R)
    await producer.produce(bytearray(b"hello"))
    consumer = await conn.consumer(station, "c", timeout_retries=R)
    assert data(await fetch_n(consumer, 1)) == [b"hello"]


# -- connection token ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_broker() -> Iterator[LocalBroker]:
    with LocalBroker(auth="token", token="s3cret-token", memory=True) as b:
        yield b


async def test_token_mode(connect: Any, token_broker: LocalBroker, uid: Any) -> None:
    conn = await connect(token_broker)
    await roundtrip(conn, uid("token"))

    async def seen() -> bool:  # through the /connz poll
        return conn.connection_id in (await token_broker.list_clients())["connections"]

    await eventually(seen)


@_refused_socket
async def test_wrong_token_rejected(client_lib: ClientLib, token_broker: LocalBroker) -> None:
    conn = client_lib.Memphis()
    kwargs = token_broker.connect_kwargs() | {"connection_token": "wrong", "reconnect": False}
    with quiet_nats_log(), pytest.raises(client_lib.MemphisError, match="(?i)authorization violation"):
        await conn.connect(**kwargs)
    del conn
    gc.collect()


async def test_token_and_password_together_refused_by_the_client(
    client_lib: ClientLib, token_broker: LocalBroker
) -> None:
    conn = client_lib.Memphis()
    kwargs = token_broker.connect_kwargs() | {"password": "memphis"}
    with pytest.raises(client_lib.MemphisError, match="connection token / password"):
        await conn.connect(**kwargs)


async def test_token_mode_tracks_connections(
    client_lib: ClientLib, token_broker: LocalBroker, uid: Any
) -> None:
    station = uid("token-kill")
    async with client_process(client_lib, token_broker, station, "g") as (proc, conn_id):
        assert states(await token_broker.list_clients(station), conn_id) == [
            ("doomed-consumer", True),
            ("doomed-producer", True),
        ]
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

        async def inactive() -> bool:
            got = states(await token_broker.list_clients(station), conn_id)
            return got == [("doomed-consumer", False), ("doomed-producer", False)]

        await eventually(inactive)


# -- application users ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def users_broker() -> Iterator[LocalBroker]:
    with LocalBroker(users={"billing": "b-pass"}, memory=True) as b:
        yield b


async def test_application_user(connect: Any, users_broker: LocalBroker, uid: Any) -> None:
    conn = await connect(users_broker, username="billing", password="b-pass")
    station = uid("app-user")
    await roundtrip(conn, station)
    clients = await users_broker.list_clients(station)
    assert {p["username"] for p in clients["producers"]} == {"billing"}


# -- mutual TLS ----------------------------------------------------------------------------------------


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    cert_file, key_file = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_file), str(key_file)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("memphis-fast test CA", ca_key, None, ca=True)
    ca_file, _ = _write(d / "ca", ca, ca_key)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server_cert, server_key_file = _write(
        d / "server", _cert("server", server_key, ("memphis-fast test CA", ca_key)), server_key
    )
    client_cert, client_key_file = _write(
        d / "client", _cert("client", client_key, ("memphis-fast test CA", ca_key)), client_key
    )
    return {
        "ca": ca_file,
        "server_cert": server_cert,
        "server_key": server_key_file,
        "client_cert": client_cert,
        "client_key": client_key_file,
    }


@pytest.fixture(scope="module")
def tls_broker(tls_files: dict[str, str]) -> Iterator[LocalBroker]:
    # Token mode: memphis-py cannot combine TLS with a password (it deep-copies its connection
    # options, SSLContext included, for the user-name probe: "cannot pickle 'SSLContext'").
    with LocalBroker(
        auth="token",
        tls_cert=tls_files["server_cert"],
        tls_key=tls_files["server_key"],
        tls_ca=tls_files["ca"],
        memory=True,
    ) as b:
        yield b


async def test_mutual_tls(connect: Any, tls_broker: LocalBroker, tls_files: dict[str, str], uid: Any) -> None:
    conn = await connect(
        tls_broker,
        cert_file=tls_files["client_cert"],
        key_file=tls_files["client_key"],
        ca_file=tls_files["ca"],
    )
    await roundtrip(conn, uid("tls"))


async def test_tls_client_requires_all_three_files(
    client_lib: ClientLib, tls_broker: LocalBroker, tls_files: dict[str, str]
) -> None:
    conn = client_lib.Memphis()
    kwargs = {k: v for k, v in tls_broker.connect_kwargs().items() if not k.endswith("_file")}
    with pytest.raises(client_lib.MemphisError, match="Must provide a TLS key file"):
        await conn.connect(**kwargs, cert_file=tls_files["client_cert"])


@_refused_socket
async def test_tls_without_a_client_certificate_is_refused(
    tls_broker: LocalBroker, tls_files: dict[str, str]
) -> None:
    import ssl

    import nats

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls_files["ca"])
    kwargs = tls_broker.nats_kwargs() | {
        "tls": ctx,
        "allow_reconnect": False,
        "max_reconnect_attempts": 1,
        "reconnect_time_wait": 0.1,
        "connect_timeout": 2,
    }
    with quiet_nats_log(), pytest.raises(Exception):  # noqa: B017 - the TLS handshake fails
        nc = await nats.connect(**kwargs)
        await nc.close()
    gc.collect()
