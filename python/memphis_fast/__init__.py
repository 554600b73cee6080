"""memphis-fast: a Rust-accelerated, drop-in replacement for the memphis-py client.

Switch by changing one import line::

    from memphis_fast import Memphis, Headers, MemphisError, MemphisConnectError, MemphisSchemaError
    from memphis_fast.types import Retention, Storage

or connect in one step: ``async with await memphis_fast.connect(host=..., username=...,
password=...) as memphis:``.
"""

from typing import TYPE_CHECKING, Any

from . import _core
from .exceptions import (
    MemphisArgumentError,
    MemphisArgumentTypeError,
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
    MemphisTimeoutError,
)
from .types import Retention, Storage

if TYPE_CHECKING:
    from .consumer import Consumer
    from .headers import Headers
    from .memphis import Memphis, connect
    from .message import Message
    from .producer import (
        MemphisProduceTimeoutError,
        OutcomeKind,
        OutcomeReason,
        ProduceFailure,
        Producer,
        ProduceResult,
    )
    from .station import Station

# The client classes are imported on first use, so that `python -m memphis_fast.broker` and
# `memphis-fast bench` do not load (or depend on) the client.
_LAZY = {
    "Consumer": "consumer",
    "Headers": "headers",
    "Memphis": "memphis",
    "Message": "message",
    "MemphisProduceTimeoutError": "producer",
    "OutcomeKind": "producer",
    "OutcomeReason": "producer",
    "ProduceFailure": "producer",
    "Producer": "producer",
    "ProduceResult": "producer",
    "Station": "station",
    "connect": "memphis",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memphis_fast' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__version__ = _core.VERSION

__all__ = [
    "Consumer",
    "Headers",
    "Memphis",
    "MemphisArgumentError",
    "MemphisArgumentTypeError",
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
    "MemphisTimeoutError",
    "Message",
    "OutcomeKind",
    "OutcomeReason",
    "ProduceFailure",
    "ProduceResult",
    "Producer",
    "Retention",
    "Station",
    "Storage",
    "__version__",
    "connect",
]
