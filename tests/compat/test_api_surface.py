"""memphis_fast's public API matches memphis-py 1.3.1 (installed from PyPI as a test
dependency): every method users call exists with the same parameter names, order, defaults
and sync/async nature. Extra parameters are allowed only after memphis-py's, with defaults."""

from __future__ import annotations

import enum
import inspect
from typing import Any

import memphis as mpy
import memphis.consumer
import memphis.message
import memphis.producer
import memphis.station
import memphis.types
import pytest

import memphis_fast as mf
import memphis_fast.consumer
import memphis_fast.memphis
import memphis_fast.message
import memphis_fast.partition_generator
import memphis_fast.producer
import memphis_fast.station
import memphis_fast.types
import memphis_fast.utils

# (memphis-py class, memphis-fast class, method names) — section 2 of the feature matrix.
SURFACE: list[tuple[Any, Any, list[str]]] = [
    (
        mpy.Memphis,
        mf.Memphis,
        [
            "__init__",
            "connect",
            "close",
            "is_connected",
            "station",
            "producer",
            "consumer",
            "produce",
            "fetch_messages",
            "create_schema",
            "enforce_schema",
            "attach_schema",
            "detach_schema",
            "schema_name_validation",
            "unset_cached_producer_station",
            "unset_cached_consumer_station",
        ],
    ),
    (memphis.station.Station, memphis_fast.station.Station, ["__init__", "destroy", "validate_msg"]),
    (
        memphis.producer.Producer,
        memphis_fast.producer.Producer,
        ["__init__", "produce", "destroy", "get_partition_from_key", "validate_partition_number"],
    ),
    (
        memphis.consumer.Consumer,
        memphis_fast.consumer.Consumer,
        [
            "__init__",
            "set_context",
            "consume",
            "fetch",
            "destroy",
            "get_partition_from_key",
            "validate_partition_number",
            "load_messages_to_cache",
        ],
    ),
    (
        memphis.message.Message,
        memphis_fast.message.Message,
        [
            "__init__",
            "ack",
            "nack",
            "delay",
            "dead_letter",
            "get_data",
            "get_data_deserialized",
            "get_headers",
            "get_sequence_number",
            "get_timesent",
        ],
    ),
    (mpy.Headers, mf.Headers, ["__init__", "add"]),
]

CASES = [(old, new, name) for old, new, names in SURFACE for name in names]


def _norm(default: Any) -> Any:
    """Enum defaults come from each package's own ``types`` module: compare name and value."""
    if isinstance(default, enum.Enum):
        return (type(default).__name__, default.name, default.value)
    return default


def _params(fn: Any) -> list[inspect.Parameter]:
    return list(inspect.signature(fn).parameters.values())


@pytest.mark.parametrize(("old", "new", "name"), CASES, ids=[f"{o.__name__}.{n}" for o, _, n in CASES])
def test_same_signature_and_nature(old: Any, new: Any, name: str) -> None:
    fo = getattr(old, name)
    fn = getattr(new, name, None)
    assert fn is not None, f"{new.__name__}.{name} is missing"
    assert inspect.iscoroutinefunction(fo) == inspect.iscoroutinefunction(fn), (
        f"{new.__name__}.{name}: sync/async differs from memphis-py"
    )
    po, pn = _params(fo), _params(fn)
    assert [p.name for p in pn[: len(po)]] == [p.name for p in po], (
        f"{new.__name__}.{name}: parameters {[p.name for p in pn]} vs memphis-py {[p.name for p in po]}"
    )
    for a, b in zip(po, pn, strict=False):
        assert a.kind == b.kind or (
            a.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
            and b.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ), f"{name}({a.name}): kind {b.kind} vs {a.kind}"
        assert _norm(a.default) == _norm(b.default), (
            f"{new.__name__}.{name}({a.name}): default {b.default!r} vs {a.default!r}"
        )
    for extra in pn[len(po) :]:
        assert extra.default is not inspect.Parameter.empty or extra.kind in (
            inspect.Parameter.VAR_KEYWORD,
            inspect.Parameter.VAR_POSITIONAL,
        ), f"{new.__name__}.{name}: extra parameter {extra.name} needs a default"


def test_top_level_names() -> None:
    for name in [
        "Memphis",
        "Headers",
        "MemphisError",
        "MemphisConnectError",
        "MemphisSchemaError",
        "MemphisHeaderError",
    ]:
        assert hasattr(mf, name), name
    for sub in ["MemphisConnectError", "MemphisSchemaError", "MemphisHeaderError"]:
        assert issubclass(getattr(mf, sub), mf.MemphisError)
    assert [e.name for e in memphis_fast.types.Retention] == [e.name for e in memphis.types.Retention]
    assert [e.value for e in memphis_fast.types.Retention] == [e.value for e in memphis.types.Retention]
    assert [(e.name, e.value) for e in memphis_fast.types.Storage] == [
        (e.name, e.value) for e in memphis.types.Storage
    ]


def test_constants_and_modules() -> None:
    assert mf.Memphis.MAX_BATCH_SIZE == mpy.Memphis.MAX_BATCH_SIZE == 5000
    assert mf.Memphis.SEED == mpy.Memphis.SEED == 31
    assert mf.Memphis.MEMPHIS_GLOBAL_ACCOUNT_NAME == mpy.Memphis.MEMPHIS_GLOBAL_ACCOUNT_NAME
    assert mf._core.PARTITION_KEY_SEED == mf.Memphis.SEED  # must match (Rust constant)
    assert memphis_fast.consumer.Consumer.MAX_BATCH_SIZE == 5000
    assert memphis_fast.utils.get_internal_name("Orders.EU") == "orders#eu"
    assert isinstance(memphis_fast.memphis.app_id, str)
    gen = memphis_fast.partition_generator.PartitionGenerator([1, 2, 3])
    assert [next(gen) for _ in range(4)] == [1, 2, 3, 1]


def test_error_text_shape() -> None:
    e = mf.MemphisError("station natsorders does not exist")
    old = mpy.MemphisError("station natsorders does not exist")
    # Same "memphis: " prefix; user data is no longer rewritten (B20).
    assert str(e) == "memphis: station natsorders does not exist"
    assert str(old).startswith("memphis: ")
    assert e.message == "station natsorders does not exist"
    assert str(mf.MemphisError(ValueError("x"))) == "memphis: x"  # non-str accepted (B15)
