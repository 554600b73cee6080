"""Operator requests to a running broker: what the real broker does through its UI.

The control plane serves them on ``$memphis_fast_admin.<operation>`` (JSON in, JSON out), so
they reach the broker over NATS with ordinary root credentials. This is an extension of the
Memphis protocol; SDK clients never use these subjects.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import nats
from nats.aio.client import Client as NATS

from .._subjects import admin_subject

__all__ = ["AdminClient", "AdminError"]


class AdminError(RuntimeError):
    """The broker refused an operator request."""


class AdminClient:
    """An async client for the operator requests (``async with AdminClient(url, ...) as admin``)."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.user = user
        self.password = password
        self.token = token
        self.tls = tls
        self.timeout = timeout
        self.nc: NATS | None = None

    async def connect(self) -> AdminClient:
        opts: dict[str, Any] = {
            "servers": [u for u in self.url.split(",") if u],  # a cluster: every node
            "name": "memphis-fast admin",
            "allow_reconnect": False,
            # nats-py retries an initial connect forever with 0 attempts; 1 means one retry.
            "max_reconnect_attempts": 1,
            "reconnect_time_wait": 0.1,
            "connect_timeout": self.timeout,
        }

        async def quiet(exc: Exception) -> None:
            return None

        opts["error_cb"] = quiet
        if self.user is not None:
            opts["user"] = self.user
            opts["password"] = self.password or ""
        if self.token is not None:
            opts["token"] = self.token
        if self.tls is not None:
            opts["tls"] = self.tls
        self.nc = await nats.connect(**opts)
        return self

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()
        self.nc = None

    async def __aenter__(self) -> AdminClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, op: str, **body: Any) -> dict[str, Any]:
        if self.nc is None:
            await self.connect()
        assert self.nc is not None
        try:
            msg = await self.nc.request(admin_subject(op), json.dumps(body).encode(), timeout=self.timeout)
        except nats.errors.NoRespondersError:
            raise AdminError("no broker control plane answered (is the broker running?)") from None
        result: dict[str, Any] = json.loads(msg.data)
        if result.get("error"):
            raise AdminError(str(result["error"]))
        return result

    # -- convenience ----------------------------------------------------------------------------
    async def ping(self) -> dict[str, Any]:
        return await self.call("ping")

    async def list_stations(self) -> list[dict[str, Any]]:
        stations: list[dict[str, Any]] = (await self.call("stations.list"))["stations"]
        return stations

    async def delete_station(self, name: str) -> None:
        await self.call("station.delete", name=name)

    async def set_dls_config(
        self, station: str, *, poison: bool | None = None, schemaverse: bool | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": station}
        if poison is not None:
            body["poison"] = poison
        if schemaverse is not None:
            body["schemaverse"] = schemaverse
        result: dict[str, Any] = (await self.call("station.dls_config", **body))["station"]
        return result

    async def list_schemas(self) -> list[dict[str, Any]]:
        schemas: list[dict[str, Any]] = (await self.call("schemas.list"))["schemas"]
        return schemas

    async def activate_schema(self, name: str, version: int) -> list[str]:
        """Make ``version`` the active one; returns the stations that got the update broadcast."""
        stations: list[str] = (await self.call("schema.activate", name=name, version=version))["stations"]
        return stations

    async def delete_schema(self, name: str) -> list[str]:
        stations: list[str] = (await self.call("schema.delete", name=name))["stations"]
        return stations

    async def list_dls(self, station: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {}
        if station:
            body["station"] = station
        if type:
            body["type"] = type
        messages: list[dict[str, Any]] = (await self.call("dls.list", **body))["messages"]
        return messages

    async def resend_dls(self, station: str, ids: list[int] | None = None) -> int:
        """Resend poison messages (all of the station's, or ``ids``) to their groups."""
        body: dict[str, Any] = {"station": station}
        if ids is not None:
            body["ids"] = list(ids)
        return int((await self.call("dls.resend", **body))["resent"])

    async def drop_dls(self, station: str, ids: list[int] | None = None) -> int:
        body: dict[str, Any] = {"station": station}
        if ids is not None:
            body["ids"] = list(ids)
        return int((await self.call("dls.drop", **body))["dropped"])

    async def list_clients(self, station: str | None = None) -> dict[str, Any]:
        return await self.call("clients.list", station=station or "")

    async def set_notifications(self, enabled: bool) -> None:
        await self.call("notifications.set", enabled=enabled)

    async def list_notifications(self) -> list[dict[str, Any]]:
        notes: list[dict[str, Any]] = (await self.call("notifications.list"))["notifications"]
        return notes
