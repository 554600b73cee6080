"""GraphQL stations: graphql-core, the schema built (and checked) once per version.

A message is a GraphQL document (a query); it must parse and validate against the schema with
graphql-core's standard rules, exactly memphis-py's check. Validation is a pure function of the
document text, so results for texts up to 8 KiB are kept in a per-schema LRU of 512 entries:
a producer that sends the same operation again pays a dictionary look-up instead of a parse and
~30 visitor rules.
"""

from __future__ import annotations

import functools
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, build_schema, parse, validate
from graphql.type import assert_valid_schema

from ._base import UNSUPPORTED, Schema, _document_text, fail, fail_decode

__all__ = ["GraphqlSchema", "INVALID_GRAPHQL"]

INVALID_GRAPHQL = "Invalid message format, expected GraphQL"
_CACHE_ENTRIES = 512
_CACHE_MAX_TEXT = 8192


def _errors_reason(errors: list[GraphQLError]) -> str:
    parts = []
    for err in errors:
        loc = err.locations[0] if err.locations else None
        parts.append(f"{err.message} (line {loc.line}, column {loc.column})" if loc else err.message)
    return "; ".join(parts)


class GraphqlSchema(Schema):
    """``type == "graphql"``. Accepts ``str``, ``bytes``/``bytearray``/``memoryview`` (UTF-8) and
    graphql-core ``DocumentNode`` (sent as its source text)."""

    __slots__ = ("graphql_schema", "_cached_reason")

    def __init__(self, name: str, version: int, schema_text: str) -> None:
        super().__init__("graphql", name, version)
        try:
            schema = build_schema(schema_text)
            assert_valid_schema(schema)
        except Exception as e:  # GraphQLSyntaxError, TypeError from the checks
            raise ValueError(f"invalid GraphQL schema: {e}") from None
        self.graphql_schema: GraphQLSchema = schema
        self._cached_reason = functools.lru_cache(maxsize=_CACHE_ENTRIES)(self._text_reason)

    def _text_reason(self, text: str) -> str | None:
        """``None`` if ``text`` is a valid document, else the reason."""
        try:
            # Without locations the parse + validate is ~9% cheaper; only a failing document,
            # whose error text wants line/column, is parsed again with them.
            document = parse(text, no_location=True)
        except GraphQLError:
            return INVALID_GRAPHQL
        except Exception as e:  # RecursionError on absurd nesting
            return f"{INVALID_GRAPHQL}: {e}"
        if self._document_reason(document) is None:
            return None
        return self._document_reason(parse(text))

    def _document_reason(self, document: DocumentNode) -> str | None:
        try:
            errors = validate(self.graphql_schema, document)
        except Exception as e:  # a malformed hand-built AST
            return str(e) or type(e).__name__
        return _errors_reason(errors) if errors else None

    def _reason(self, text: str) -> str | None:
        if len(text) <= _CACHE_MAX_TEXT:
            return self._cached_reason(text)  # type: ignore[no-any-return]
        return self._text_reason(text)

    def encode(self, message: Any) -> bytes:
        t = type(message)
        if t is str:
            text = message
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError:
                fail(INVALID_GRAPHQL, message)
            reason = self._reason(text)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            data = bytes(message)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                fail(INVALID_GRAPHQL, message, data)
            reason = self._reason(text)
        elif isinstance(message, str):
            return self.encode(str(message))
        else:
            doc_text = _document_text(message)
            if doc_text is None:
                fail(UNSUPPORTED, message)
            # memphis-py validates the document object as given and sends its source text.
            data = doc_text.encode("utf-8", "surrogatepass")
            reason = self._document_reason(message)
        if reason is not None:
            fail(reason, message, data)
        return data  # type: ignore[no-any-return]

    def decode(self, data: bytes | bytearray | memoryview) -> str:
        """The document text."""
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            fail_decode(INVALID_GRAPHQL)
        reason = self._reason(text)
        if reason is not None:
            fail_decode(reason)
        return text
