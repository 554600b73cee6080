"""memphis-fast: a Rust-accelerated, drop-in replacement for the memphis-py client.

Switch by changing one import line::

    from memphis_fast import Memphis, Headers, MemphisError, MemphisConnectError, MemphisSchemaError
    from memphis_fast.types import Retention, Storage
"""

from . import _core
from .consumer import Consumer
from .exceptions import (
    MemphisConnectError,
    MemphisConnectionClosedError,
    MemphisError,
    MemphisFetchError,
    MemphisHeaderError,
    MemphisNoRespondersError,
    MemphisPayloadTooLargeError,
    MemphisProduceError,
    MemphisProtocolError,
    MemphisSchemaError,
    MemphisServerError,
    MemphisTimeoutError,
)
from .headers import Headers
from .memphis import Memphis
from .message import Message
from .producer import MemphisProduceTimeoutError, ProduceFailure, Producer, ProduceResult
from .station import Station
from .types import Retention, Storage

__version__ = _core.VERSION

__all__ = [
    "Consumer",
    "Headers",
    "Memphis",
    "MemphisConnectError",
    "MemphisConnectionClosedError",
    "MemphisError",
    "MemphisFetchError",
    "MemphisHeaderError",
    "MemphisNoRespondersError",
    "MemphisPayloadTooLargeError",
    "MemphisProduceError",
    "MemphisProduceTimeoutError",
    "MemphisProtocolError",
    "MemphisSchemaError",
    "MemphisServerError",
    "MemphisTimeoutError",
    "Message",
    "ProduceFailure",
    "ProduceResult",
    "Producer",
    "Retention",
    "Station",
    "Storage",
    "__version__",
]
