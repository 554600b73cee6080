"""Helpers for the wire tests (imported by the tests and by ``conftest.py``): an event
recorder, nats-server monitoring, JetStream stream helpers and TLS material generation."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memphis_fast._connect import Server
from memphis_fast._connection import NatsConnection
from memphis_fast._server import NatsServer
from memphis_fast.testing import TcpProxy

Connect = Callable[..., Awaitable[NatsConnection]]


class Events:
    """Records ``on_event`` callbacks and lets a test wait for them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._cond: asyncio.Condition | None = None

    def __call__(self, name: str, detail: Any) -> None:
        self.items.append((name, detail))
        cond = self._cond
        if cond is not None:

            async def notify() -> None:
                async with cond:
                    cond.notify_all()

            asyncio.get_running_loop().create_task(notify())

    def names(self) -> list[str]:
        return [n for n, _ in self.items]

    def count(self, name: str) -> int:
        return self.names().count(name)

    async def wait(self, name: str, count: int = 1, timeout: float = 10.0) -> None:
        if self._cond is None:
            self._cond = asyncio.Condition()
        async with asyncio.timeout(timeout):
            async with self._cond:
                await self._cond.wait_for(lambda: self.count(name) >= count)


def server_of(target: NatsServer | TcpProxy | Server | int) -> Server:
    if isinstance(target, Server):
        return target
    if isinstance(target, int):
        return Server("127.0.0.1", target)
    return Server("127.0.0.1", target.port)


# -- nats-server helpers -------------------------------------------------------------------------
def monitoring_port(srv: NatsServer) -> int:
    """The HTTP monitoring port of a server started with ``http: "127.0.0.1:-1"``."""
    files = list((srv.workdir / "ports").glob("*.ports"))
    assert files, "no ports file"
    info = json.loads(files[0].read_text())
    url = info["monitoring"][0]
    return int(url.rsplit(":", 1)[1])


async def monitor(srv: NatsServer, path: str) -> dict[str, Any]:
    """GET a monitoring endpoint (``/connz?state=all`` ...) as JSON."""
    url = f"http://127.0.0.1:{monitoring_port(srv)}{path}"

    def get() -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=5) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    return await asyncio.to_thread(get)


MONITORING = 'http: "127.0.0.1:-1"'


async def create_stream(
    conn: NatsConnection, name: str, subjects: list[str], *, storage: str = "file", **extra: Any
) -> dict[str, Any]:
    cfg = {"name": name, "subjects": subjects, "storage": storage, **extra}
    reply = await conn.request(f"$JS.API.STREAM.CREATE.{name}", json.dumps(cfg).encode(), 5)
    body: dict[str, Any] = json.loads(reply.data)
    assert "error" not in body, body
    return body


async def stream_info(conn: NatsConnection, name: str) -> dict[str, Any]:
    reply = await conn.request(f"$JS.API.STREAM.INFO.{name}", b"", 5)
    body: dict[str, Any] = json.loads(reply.data)
    assert "error" not in body, body
    return body


async def stream_msg(conn: NatsConnection, name: str, seq: int) -> dict[str, Any]:
    reply = await conn.request(f"$JS.API.STREAM.MSG.GET.{name}", json.dumps({"seq": seq}).encode(), 5)
    body: dict[str, Any] = json.loads(reply.data)
    return body


# -- TLS material ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: a CA that signed nothing the server trusts, with a client certificate of its own
    other_ca: Path
    other_client_cert: Path
    other_client_key: Path


def write_pki(d: Path) -> TlsFiles:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        k = key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
            .sign(k, hashes.SHA256())
        )
        return cert, k

    def leaf(
        cn: str,
        issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
        usage: x509.ObjectIdentifier,
        san: list[x509.GeneralName],
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        k = key()
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer[0].subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[0].public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(issuer[1], hashes.SHA256()), k

    def write(path: Path, cert: x509.Certificate, k: ec.EllipticCurvePrivateKey | None = None) -> None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if k is not None:
            path.with_suffix(".key").write_bytes(
                k.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )

    root = ca("memphis-fast test CA")
    server = leaf(
        "nats-server",
        root,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )
    client = leaf("client", root, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    other = ca("some other CA")
    other_client = leaf("intruder", other, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    write(d / "ca.pem", root[0])
    write(d / "server.pem", *server)
    write(d / "client.pem", *client)
    write(d / "other-ca.pem", other[0])
    write(d / "other-client.pem", *other_client)
    return TlsFiles(
        ca=d / "ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        other_ca=d / "other-ca.pem",
        other_client_cert=d / "other-client.pem",
        other_client_key=d / "other-client.key",
    )


def ms(seconds: float) -> int:
    """An ack wait / expiry given in seconds, as the integer milliseconds the API takes."""
    return round(seconds * 1000)
