"""Helpers for testing code that uses memphis-fast: a real nats-server child process
(:class:`~memphis_fast._server.NatsServer`) and a fault-injecting TCP proxy
(:class:`~memphis_fast.testing.proxy.TcpProxy`) that cuts, stalls and restores links."""

from __future__ import annotations

from .._server import NatsServer
from .proxy import ProxyMode, TcpProxy

__all__ = ["NatsServer", "ProxyMode", "TcpProxy"]
