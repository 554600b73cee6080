"""A local Memphis-protocol broker: a real nats-server with JetStream plus a Memphis control plane.

Start it from the command line (``memphis-fast broker``) or from Python::

    from memphis_fast.broker import LocalBroker

    with LocalBroker() as broker:             # a free port, a temporary data directory
        ...  # Memphis.connect(**broker.connect_kwargs())

The control plane (:mod:`memphis_fast.broker.control_plane`) implements the Memphis SDK wire
protocol with nats-py; it never imports the memphis_fast client.
"""

from .admin import AdminClient, AdminError
from .config import BrokerConfig, ConfigError, default_data_dir
from .local import BrokerStartError, LocalBroker

__all__ = [
    "AdminClient",
    "AdminError",
    "BrokerConfig",
    "BrokerStartError",
    "ConfigError",
    "LocalBroker",
    "default_data_dir",
]
