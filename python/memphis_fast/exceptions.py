"""The exception hierarchy. Everything memphis-fast raises on purpose is a :class:`MemphisError`.

The four public classes of memphis-py 1.3.1 keep their names and their meaning
(``MemphisError``, ``MemphisConnectError``, ``MemphisSchemaError``, ``MemphisHeaderError``);
the others are subclasses that carry attributes, so code written for memphis-py keeps catching
what it caught before.

Two deliberate differences from memphis-py:

* ``str(err)`` is ``"memphis: <message>"`` as before, but the message is never rewritten:
  memphis-py replaced every ``nats`` substring with ``memphis``, including user data such as
  station names (defect B20).
* Any object is accepted as the message (memphis-py crashed on a non-``str``, defect B15).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MemphisError",
    "MemphisConnectError",
    "MemphisSchemaError",
    "MemphisHeaderError",
    "MemphisTimeoutError",
    "MemphisNoRespondersError",
    "MemphisProtocolError",
    "MemphisConnectionClosedError",
    "MemphisPayloadTooLargeError",
    "MemphisProduceError",
    "MemphisFetchError",
    "MemphisArgumentError",
    "MemphisArgumentTypeError",
]


class MemphisError(Exception):
    """Base class of every error raised by memphis-fast."""

    def __init__(self, message: object = "", **attrs: Any) -> None:
        text = message if isinstance(message, str) else str(message)
        if text.startswith("memphis: "):
            text = text[len("memphis: ") :]
        self.message = text
        for key, value in attrs.items():
            setattr(self, key, value)
        super().__init__(text)

    def __str__(self) -> str:
        return "memphis: " + self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class MemphisConnectError(MemphisError):
    """Connecting or authenticating failed, or an operation needs a connection that is gone."""


class MemphisSchemaError(MemphisError):
    """A message does not match the schema enforced on its station (or a schema is invalid).

    Raised by validation: ``reason`` is the validator's text (without the ``Schema validation
    has failed:`` prefix) and ``payload`` the bytes that would have been sent (``None`` when
    there are none).
    """

    reason: str = ""
    payload: bytes | None = None


class MemphisHeaderError(MemphisError):
    """An invalid message header (for example a key starting with ``$memphis``)."""


class MemphisTimeoutError(MemphisError, TimeoutError):
    """An operation did not complete in time. Also a :class:`TimeoutError`."""


class MemphisNoRespondersError(MemphisError):
    """A request reached no subscriber (NATS status 503): no broker, or no stream for a subject."""


class MemphisProtocolError(MemphisConnectError):
    """The server sent bytes that are not valid NATS protocol, or a frame over the limits."""


class MemphisConnectionClosedError(MemphisConnectError):
    """The connection was closed (by :meth:`Memphis.close` or after reconnecting gave up)."""


class MemphisPayloadTooLargeError(MemphisError):
    """A message is larger than the server's ``max_payload``; it was not sent."""


class MemphisProduceError(MemphisError):
    """One or more produced messages were not stored.

    ``failures`` is a list of :class:`memphis_fast.producer.ProduceFailure`, each naming the
    message (its index in the batch, its ``msg_id``) and its outcome.
    """

    failures: list[Any]


class MemphisFetchError(MemphisError):
    """A pull request for messages failed (consumer or stream gone, or the request was refused)."""


class MemphisArgumentError(MemphisError, ValueError):
    """An argument is out of range or otherwise invalid; raised before anything is sent.
    Also a :class:`ValueError`. The message names the argument and what is allowed."""


class MemphisArgumentTypeError(MemphisArgumentError, TypeError):
    """An argument has the wrong type; raised before anything is sent. Also a
    :class:`TypeError` (and a :class:`MemphisArgumentError`)."""
