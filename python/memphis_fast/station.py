"""Stations (``memphis.station.Station``) and the per-station state a connection shares between
its producers and consumers: partitions, the enforced schema, DLS flags, functions routing."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._subjects import StationDestruction, internal_name, parse_functions_update, reply_text
from .exceptions import MemphisError
from .schemaverse import StationSchema
from .utils import check_int

if TYPE_CHECKING:
    from .consumer import Consumer
    from .memphis import Memphis
    from .producer import Producer

__all__ = ["Station"]

log = logging.getLogger("memphis_fast")


class StationState:
    """What one connection knows about one station. Shared by all its producers/consumers;
    the schema and functions listeners are subscribed while at least one of them exists."""

    __slots__ = (
        "internal_name",
        "schema",
        "schema_sid",
        "functions",
        "functions_sid",
        "schemaverse_to_dls",
        "clients",
    )

    def __init__(self, internal_name: str) -> None:
        self.internal_name = internal_name
        self.schema = StationSchema()
        self.schema_sid: int | None = None
        #: partition number (as a string, like the wire) -> function id
        self.functions: dict[str, Any] = {}
        self.functions_sid: int | None = None
        self.schemaverse_to_dls = True
        self.clients = 0

    def on_schema_broadcast(self, msgs: list[Any]) -> None:
        for m in msgs:
            try:
                self.schema.apply_broadcast(m.data)
            except Exception:
                log.exception("bad schema update for station %s", self.internal_name)

    def on_functions_broadcast(self, msgs: list[Any]) -> None:
        for m in msgs:
            try:
                self.functions = parse_functions_update(m.data)
            except Exception:
                log.exception("bad functions update for station %s", self.internal_name)


class Station:
    """A station. Created by :meth:`Memphis.station`."""

    def __init__(self, connection: Memphis, name: str) -> None:
        self.connection = connection
        self.name = name.lower()
        self.internal_station_name = internal_name(self.name)

    def __repr__(self) -> str:
        return f"<Station {self.name}>"

    async def destroy(self, timeout_retries: int = 5) -> None:
        """Destroy the station, its partitions' streams and its consumer groups. A station that
        does not exist is not an error. Producers and consumers of this station cached by this
        connection are dropped (only this station's: memphis-py matched by substring, B14)."""
        check_int("timeout_retries", timeout_retries, minimum=0)
        conn = self.connection
        conn._require_conn()
        req = StationDestruction(station_name=self.name, username=conn.username)
        res = await conn._request(req.subject, req.to_json(), 5, timeout_retries)
        error = reply_text(res.data)
        if error != "" and "not exist" not in error:
            raise MemphisError(error)
        conn._forget_station(self.internal_station_name)

    async def create_producer(self, producer_name: str, **kwargs: Any) -> Producer:
        """Create a producer on this station (Go: ``station.CreateProducer``); the keyword
        arguments are :meth:`Memphis.producer`'s."""
        return await self.connection.producer(self.name, producer_name, **kwargs)

    async def create_consumer(self, consumer_name: str, **kwargs: Any) -> Consumer:
        """Create a consumer on this station (Go: ``station.CreateConsumer``); the keyword
        arguments are :meth:`Memphis.consumer`'s."""
        return await self.connection.consumer(self.name, consumer_name, **kwargs)

    async def validate_msg(self, message: Any) -> bytes:
        """The bytes a producer would send for ``message`` (validated against the station's
        schema); raises :class:`~memphis_fast.exceptions.MemphisSchemaError`."""
        state = self.connection._stations.get(self.internal_station_name)
        if state is None:
            return StationSchema().encode(message)
        return state.schema.encode(message)
