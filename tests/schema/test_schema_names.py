"""create_schema helpers: name and type checks with memphis-py's texts, non-blocking file reads."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from memphis_fast.exceptions import MemphisError, MemphisSchemaError
from memphis_fast.schemaverse import _names, load_schema_file, validate_schema_name, validate_schema_type

NAMES = [
    "",
    "a" * 128,
    "a" * 129,
    "Upper",
    "with space",
    "ok.name-1_2",
    "-lead",
    "trail_",
    ".dot",
    "x",
    "a#b",
    "é",
]


@pytest.mark.parametrize("name", NAMES)
async def test_name_rules_and_texts_match_memphis_py(name: str) -> None:
    from memphis.exceptions import MemphisError as PyError
    from memphis.memphis import Memphis

    try:
        await Memphis.schema_name_validation(None, name)  # type: ignore[arg-type]
        theirs = None
    except PyError as e:
        theirs = e.message
    try:
        assert validate_schema_name(name) == name
        ours = None
    except MemphisError as e:
        assert type(e) is MemphisError
        ours = e.message
    assert ours == theirs


def test_name_must_be_text() -> None:
    with pytest.raises(MemphisError, match="must be a string"):
        validate_schema_name(5)


@pytest.mark.parametrize("schema_type", ["json", "graphql", "protobuf", "avro"])
def test_types(schema_type: str) -> None:
    assert validate_schema_type(schema_type) == schema_type


@pytest.mark.parametrize("schema_type", ["JSON", "xml", "", None, 1])
def test_unknown_type_is_a_memphis_error_not_type_error(schema_type: Any) -> None:
    with pytest.raises(MemphisError) as info:
        validate_schema_type(schema_type)
    assert info.value.message.startswith("schema type not supported: ")
    assert not isinstance(info.value, MemphisSchemaError)


async def test_load_schema_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"type": "object", "title": "é"}', encoding="utf-8")
    threads = []
    real_read = _names._read

    def spy(p: Any) -> str:
        threads.append(threading.current_thread())
        return real_read(p)

    monkeypatch.setattr(_names, "_read", spy)
    assert await load_schema_file(path) == '{"type": "object", "title": "é"}'
    assert await load_schema_file(str(path)) == '{"type": "object", "title": "é"}'
    assert threads and all(t is not threading.main_thread() for t in threads)


async def test_load_schema_file_errors(tmp_path: Path) -> None:
    with pytest.raises(MemphisError, match="schema file not found: .*missing.proto"):
        await load_schema_file(tmp_path / "missing.proto")
    with pytest.raises(MemphisError, match="is a directory"):
        await load_schema_file(tmp_path)
    bad = tmp_path / "latin1.graphql"
    bad.write_bytes(b"type Query { caf\xe9: String }")
    with pytest.raises(MemphisError, match="not UTF-8"):
        await load_schema_file(bad)
    with pytest.raises(MemphisError, match="must be a string or a path"):
        await load_schema_file(3)  # type: ignore[arg-type]
