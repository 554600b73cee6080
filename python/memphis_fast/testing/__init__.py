"""Helpers for testing code that uses memphis-fast: a real nats-server child process
(:class:`~memphis_fast._server.NatsServer`) and a fault-injecting TCP proxy
(:class:`~memphis_fast.testing.proxy.TcpProxy`) that cuts, stalls, blackholes, injects into and
restores links, and a hostile NATS impostor (:class:`~memphis_fast.testing.fakeserver.HostileServer`)."""

from __future__ import annotations

from .._server import NatsServer
from .fakeserver import Behaviour, HostileServer
from .proxy import ProxyMode, TcpProxy

__all__ = ["Behaviour", "HostileServer", "NatsServer", "ProxyMode", "TcpProxy"]
