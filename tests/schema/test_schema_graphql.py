"""GraphQL stations: graphql-core parse + validate, like memphis-py, with the same inputs plus bytes."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse
from schemaverse_helpers import memphis_py_accepts, memphis_py_station, schema_update

from memphis_fast.exceptions import MemphisSchemaError
from memphis_fast.schemaverse import BrokenSchema, compile_schema
from memphis_fast.schemaverse._graphql import GraphqlSchema

SDL = """
type Query { user(id: ID!): User, users(limit: Int = 10): [User!]! }
type User { id: ID!, name: String!, email: String, friends: [User!]! }
type Mutation { rename(id: ID!, name: String!): User }
"""
QUERY = 'query GetUser { user(id: "42") { id name friends { id } } }'


def gql(sdl: str = SDL) -> GraphqlSchema:
    schema = compile_schema(schema_update("graphql", sdl))
    assert isinstance(schema, GraphqlSchema)
    return schema


@pytest.mark.parametrize(
    "wrap", [str, lambda s: s.encode(), lambda s: bytearray(s.encode()), lambda s: memoryview(s.encode())]
)
def test_text_inputs(wrap: Any) -> None:
    out = gql().encode(wrap(QUERY))
    assert type(out) is bytes and out == QUERY.encode()


def test_document_node_is_sent_as_its_source() -> None:
    assert gql().encode(parse(QUERY)) == QUERY.encode()


def test_document_node_without_location_is_printed() -> None:
    # memphis-py crashed on these ('NoneType' object has no attribute 'source')
    out = gql().encode(parse(QUERY, no_location=True))
    assert parse(out.decode()).to_dict() == parse(QUERY, no_location=True).to_dict()


@pytest.mark.parametrize("bad", ["{ user(", "not graphql at all {", b"\xff\xfe"])
def test_syntax_errors(bad: Any) -> None:
    with pytest.raises(MemphisSchemaError) as info:
        gql().encode(bad)
    assert info.value.message == "Schema validation has failed: Invalid message format, expected GraphQL"


def test_validation_error_text() -> None:
    with pytest.raises(MemphisSchemaError) as info:
        gql().encode('{ user(id: "1") { nope } }')
    assert info.value.message == (
        "Schema validation has failed: Cannot query field 'nope' on type 'User'. "
        "Did you mean 'name'? (line 1, column 19)"
    )
    assert info.value.payload == b'{ user(id: "1") { nope } }'  # type: ignore[attr-defined]


@pytest.mark.parametrize("message", [5, None, {"query": "{ users { id } }"}])
def test_unsupported(message: Any) -> None:
    with pytest.raises(MemphisSchemaError) as info:
        gql().encode(message)
    assert info.value.message == "Schema validation has failed: Unsupported message type"


CASES = [
    QUERY,
    "{ users { id name } }",
    "{ users(limit: 2) { id friends { email } } }",
    "{ user(id: 1) { nope } }",
    "{ user { id } }",
    'mutation { rename(id: "1", name: "x") { id } }',
    "subscription { x }",
    "query Q($id: ID!) { user(id: $id) { id } }",
    "query Q { user(id: $id) { id } }",
    "{ users { ...F } } fragment F on User { id }",
    "{ users { ...Missing } }",
    "{ users }",
    "{",
]


@pytest.mark.parametrize("text", CASES)
def test_same_decisions_as_memphis_py(text: str) -> None:
    station = memphis_py_station(schema_update("graphql", SDL))
    expected = memphis_py_accepts(station, "graphql", text)
    assert memphis_py_accepts(station, "graphql", bytearray(text.encode())) == expected
    for message in (text, text.encode(), text):  # the second str hits the result cache
        try:
            gql().encode(message)
            ours = True
        except MemphisSchemaError:
            ours = False
        assert ours == expected


def test_decode() -> None:
    assert gql().decode(QUERY.encode()) == QUERY
    with pytest.raises(MemphisSchemaError) as info:
        gql().decode(b"{ nope }")
    assert info.value.message.startswith(
        "Deserialization has been failed since the message format does not align with the "
        "currently attached schema: Cannot query field 'nope'"
    )
    with pytest.raises(MemphisSchemaError, match="expected GraphQL"):
        gql().decode(b"\xff")


def test_cache_is_bounded_and_long_texts_bypass_it() -> None:
    schema = gql()
    for i in range(600):
        schema.encode(f"{{ users(limit: {i}) {{ id }} }}")
    info = schema._cached_reason.cache_info()  # type: ignore[attr-defined]
    assert info.currsize <= 512
    long_query = '{ user(id: "' + "x" * 9000 + '") { id } }'
    assert schema.encode(long_query) == long_query.encode()
    assert schema._cached_reason.cache_info().currsize == info.currsize  # type: ignore[attr-defined]


def test_broken_schema() -> None:
    schema = compile_schema(schema_update("graphql", "type Query {"))
    assert isinstance(schema, BrokenSchema)
    assert (schema.compile_error or "").startswith("invalid GraphQL schema: ")
    # builds but is not a valid schema: no Query type
    assert isinstance(compile_schema(schema_update("graphql", "type Foo { a: Int }")), BrokenSchema)
