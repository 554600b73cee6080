"""Per-message schema validation cost: memphis-fast's schemaverse engine vs memphis-py's validators.

Both sides validate (and serialize) the same messages in the same process: memphis-fast through
``Schema.encode``, memphis-py through ``Station.validate_json_schema`` / ``validate_avro_schema`` /
``validate_protobuf`` / ``validate_graphql`` on a station whose connection holds the schema exactly
as memphis-py's own ``Memphis.update_schema_data`` builds it (the validators read nothing else).

Before a case is timed, every message's output is checked on both sides (same JSON value, or the
same bytes) and a few invalid messages must be rejected by both; a side that fails the check is
reported as such and not timed. Each measurement runs the whole message set in a loop with the
garbage collector off; the reported cost is the median over rounds, per message.

    .venv/bin/python benches/bench_schema.py [--rounds 7] [--min-time 0.2] [--json out.json]

memphis-py's protobuf path needs protobuf < 6.30 (B19); run under a newer protobuf (e.g.
``PYTHONPATH=.venv-pb7``) and its protobuf rows are reported as not available.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google.protobuf

from memphis_fast.schemaverse import compile_schema

STATION = "bench.station"
INTERNAL = "bench#station"
N_MESSAGES = 64
GRAPHQL_COLD_MESSAGES = 640

JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 0},
        "customer": {"type": "string", "maxLength": 64},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
                "required": ["sku", "qty"],
            },
        },
        "total": {"type": "number"},
        "paid": {"type": "boolean"},
    },
    "required": ["id", "customer", "items", "total"],
}

AVRO_SCHEMA = {
    "type": "record",
    "name": "Order",
    "namespace": "bench",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": "string"},
        {
            "name": "items",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Item",
                    "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}],
                },
            },
        },
        {"name": "total", "type": "double"},
        {"name": "paid", "type": ["null", "boolean"], "default": None},
    ],
}

PROTO = """
syntax = "proto3";
package bench;
message Order {
  int32 id = 1;
  string customer = 2;
  repeated Item items = 3;
  string note = 4;
  bool paid = 5;
}
message Item { string sku = 1; int32 qty = 2; }
"""

GRAPHQL_SDL = """
type Query { order(id: ID!): Order, orders(limit: Int = 10, customer: String): [Order!]! }
type Order { id: ID!, customer: String!, items: [Item!]!, total: Float, paid: Boolean }
type Item { sku: String!, qty: Int! }
"""


def order(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "customer": f"customer-{i % 7}",
        "items": [{"sku": f"sku-{i}-{k}", "qty": 1 + k} for k in range(1 + i % 3)],
        "total": 10.5 + i,
        "paid": i % 2 == 0,
    }


def proto_order(i: int) -> dict[str, Any]:
    # Small ints and ASCII text: memphis-py UTF-8-decodes protobuf binary (B5), so only messages
    # whose encoding happens to be valid UTF-8 get through it; the comparison uses those.
    return {
        "id": i % 100,
        "customer": f"customer-{i % 7}",
        "items": [{"sku": f"sku-{i}-{k}", "qty": 1 + k} for k in range(1 + i % 3)],
        "note": "n" * (i % 5),
        "paid": True,
    }


def graphql_query(i: int) -> str:
    return f'query Q{i} {{ order(id: "{i}") {{ id customer items {{ sku qty }} total }} orders(limit: {i % 9}) {{ id }} }}'


def update(schema_type: str, content: str, descriptor: str = "", struct: str = "") -> dict[str, Any]:
    return {
        "schema_name": f"bench-{schema_type}",
        "type": schema_type,
        "active_version": {
            "version_number": 1,
            "descriptor": descriptor,
            "schema_content": content,
            "message_struct_name": struct,
        },
    }


def protoc_update() -> dict[str, Any]:
    protoc = Path(sys.executable).parent / "protoc"
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bench-protobuf_1.proto").write_text(PROTO)
        subprocess.run(
            [str(protoc), "--descriptor_set_out=o.desc", "bench-protobuf_1.proto"], cwd=tmp, check=True
        )
        raw = Path(tmp, "o.desc").read_bytes()
    return update("protobuf", PROTO, base64.b64encode(raw).decode(), "Order")


def memphis_py_station(upd: dict[str, Any]) -> Any:
    from memphis.memphis import Memphis
    from memphis.station import Station

    class Connection:
        update_schema_data = Memphis.update_schema_data
        parse_descriptor = Memphis.parse_descriptor

        def __init__(self) -> None:
            self.schema_updates_data = {INTERNAL: upd}
            self.proto_msgs: dict[str, Any] = {}
            self.json_schemas: dict[str, Any] = {}
            self.avro_schemas: dict[str, Any] = {}
            self.graphql_schemas: dict[str, Any] = {}

    conn = Connection()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn.update_schema_data(STATION)
    return Station(conn, STATION)


@dataclass
class Case:
    schema_type: str
    input_kind: str
    ours_messages: list[Any]
    theirs_messages: list[Any]
    ours: Callable[[Any], Any]
    theirs: Callable[[Any], Any] | None
    same: Callable[[Any, Any], bool]
    reference: list[bytes]  # the correct output per message, computed independently
    invalid: list[tuple[Any, Any]] = field(default_factory=list)
    note: str = ""


def same_json(a: Any, b: Any) -> bool:
    return bool(json.loads(bytes(a)) == json.loads(bytes(b)))


def same_bytes(a: Any, b: Any) -> bool:
    return bytes(a) == bytes(b)


def build_cases() -> tuple[list[Case], dict[str, str]]:
    cases: list[Case] = []
    unavailable: dict[str, str] = {}

    def their_station(upd: dict[str, Any], kind: str) -> Any:
        try:
            return memphis_py_station(upd)
        except Exception as e:  # noqa: BLE001 - e.g. GetPrototype gone (B19)
            unavailable[kind] = f"memphis-py cannot build the schema: {e}"
            return None

    # json
    upd = update("json", json.dumps(JSON_SCHEMA))
    ours = compile_schema(upd)
    assert ours is not None
    theirs = their_station(upd, "json")
    dicts = [order(i) for i in range(N_MESSAGES)]
    texts = [json.dumps(d).encode() for d in dicts]
    bad_json = [({"id": 1}, {"id": 1}), (b"{nope", bytearray(b"{nope"))]
    cases.append(
        Case(
            "json",
            "dict",
            dicts,
            dicts,
            ours.encode,
            theirs and theirs.validate_json_schema,
            same_json,
            texts,
            bad_json,
        )
    )
    cases.append(
        Case(
            "json",
            "bytes",
            texts,
            [bytearray(t) for t in texts],
            ours.encode,
            theirs and theirs.validate_json_schema,
            same_bytes,
            texts,
            bad_json,
            "memphis-py takes bytearray only",
        )
    )

    # avro
    upd = update("avro", json.dumps(AVRO_SCHEMA))
    ours = compile_schema(upd)
    assert ours is not None
    theirs = their_station(upd, "avro")
    avro_dicts = [order(i) for i in range(N_MESSAGES)]
    avro_texts = [json.dumps(d).encode() for d in avro_dicts]
    bad_avro = [({"id": "x"}, {"id": "x"})]
    cases.append(
        Case(
            "avro",
            "dict",
            avro_dicts,
            avro_dicts,
            ours.encode,
            theirs and theirs.validate_avro_schema,
            same_json,
            avro_texts,
            bad_avro,
        )
    )
    cases.append(
        Case(
            "avro",
            "bytes",
            avro_texts,
            [bytearray(t) for t in avro_texts],
            ours.encode,
            theirs and theirs.validate_avro_schema,
            same_bytes,
            avro_texts,
            bad_avro,
            "memphis-py takes bytearray only",
        )
    )

    # protobuf
    upd = protoc_update()
    pb = compile_schema(upd)
    assert pb is not None and pb.compile_error is None, pb
    cls = pb.message_class  # type: ignore[attr-defined]
    theirs = their_station(upd, "protobuf")
    pdicts = [proto_order(i) for i in range(N_MESSAGES)]
    objects = [cls(**d) for d in pdicts]
    wires = [o.SerializeToString() for o in objects]
    from google.protobuf import json_format

    parsed = [json_format.ParseDict(d, cls()).SerializeToString() for d in pdicts]
    assert parsed == wires
    validate_pb = theirs and theirs.validate_protobuf
    bad_pb = [(b"\xff\xff", bytearray(b"\xff\xff")), ({"nope": 1}, {"nope": 1})]
    cases.append(
        Case(
            "protobuf", "message object", objects, objects, pb.encode, validate_pb, same_bytes, wires, bad_pb
        )
    )
    cases.append(
        Case(
            "protobuf",
            "bytes",
            wires,
            [bytearray(w) for w in wires],
            pb.encode,
            validate_pb,
            same_bytes,
            wires,
            bad_pb,
            "memphis-py takes bytearray only",
        )
    )
    cases.append(
        Case(
            "protobuf",
            "dict",
            pdicts,
            pdicts,
            pb.encode,
            validate_pb,
            same_bytes,
            wires,
            bad_pb,
            "every dict sets every field, so memphis-py's shared prototype (B4) gives correct output",
        )
    )

    # graphql
    upd = update("graphql", GRAPHQL_SDL)
    gq = compile_schema(upd)
    assert gq is not None
    theirs = their_station(upd, "graphql")
    queries = [graphql_query(i) for i in range(N_MESSAGES)]
    # More distinct documents than the per-schema result cache holds (512), visited in a cycle:
    # with LRU eviction every look-up misses, so this is the uncached cost, cache upkeep included.
    cold = [graphql_query(i) for i in range(GRAPHQL_COLD_MESSAGES)]
    bad_gql = [("{ order(id: 1) { nope } }", "{ order(id: 1) { nope } }"), ("{ order(", "{ order(")]
    validate_gql = theirs and theirs.validate_graphql

    cases.append(
        Case(
            "graphql",
            "str, distinct documents",
            cold,
            cold,
            gq.encode,
            validate_gql,
            same_bytes,
            [q.encode() for q in cold],
            bad_gql,
            "640 distinct documents in a cycle: every cache look-up misses",
        )
    )
    cases.append(
        Case(
            "graphql",
            "bytes, distinct documents",
            [q.encode() for q in cold],
            [bytearray(q.encode()) for q in cold],
            gq.encode,
            validate_gql,
            same_bytes,
            [q.encode() for q in cold],
            bad_gql,
            "as above; memphis-py takes bytearray only",
        )
    )
    cases.append(
        Case(
            "graphql",
            "str, repeated documents",
            queries,
            queries,
            gq.encode,
            validate_gql,
            same_bytes,
            [q.encode() for q in queries],
            bad_gql,
            "the same 64 documents again: memphis-fast answers from its per-schema cache",
        )
    )
    return cases, unavailable


def check(case: Case, fn: Callable[[Any], Any], messages: list[Any]) -> str | None:
    """``None`` if ``fn`` produced the reference output for every message and rejected every
    invalid one, else what went wrong."""
    for message, expected in zip(messages, case.reference, strict=True):
        try:
            out = fn(message)
        except Exception as e:  # noqa: BLE001
            return f"rejected a valid message: {str(e)[:120]}"
        if not case.same(out, expected):
            return "wrong output"
    for ours_bad, theirs_bad in case.invalid:
        bad = ours_bad if messages is case.ours_messages else theirs_bad
        try:
            fn(bad)
        except Exception:  # noqa: BLE001, S112 - both sides must raise, whatever the type
            continue
        return f"accepted an invalid message: {bad!r}"
    return None


def _run(fn: Callable[[Any], Any], messages: list[Any], loops: int) -> int:
    t0 = time.perf_counter_ns()
    for _ in range(loops):
        for m in messages:
            fn(m)
    return time.perf_counter_ns() - t0


def _calibrate(fn: Callable[[Any], Any], messages: list[Any], min_time: float) -> int:
    loops = 1
    while _run(fn, messages, loops) < min_time * 1e9 and loops < 1 << 20:
        loops *= 2
    return loops


def measure(
    sides: list[tuple[Callable[[Any], Any], list[Any]]], rounds: int, min_time: float
) -> list[list[float]]:
    """Per-message cost in ns of each side, one value per round. The sides alternate round by
    round, so drift (frequency, other load) hits both alike."""
    loops = [_calibrate(fn, messages, min_time) for fn, messages in sides]
    results: list[list[float]] = [[] for _ in sides]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for i, (fn, messages) in enumerate(sides):
                results[i].append(_run(fn, messages, loops[i]) / (loops[i] * len(messages)))
    finally:
        if gc_was_enabled:
            gc.enable()
    return results


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "n/a"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per round (at least)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--cpu", type=int, help="pin the process to this CPU")
    parser.add_argument("--only", help="comma-separated schema types to run")
    parser.add_argument(
        "--instructions",
        nargs="?",
        const="",
        metavar="CASES",
        help="also count instructions per message under valgrind's callgrind (noise-free, slow); "
        "optionally only for the cases whose 'type/input' contains one of these comma-separated texts",
    )
    parser.add_argument(
        "--callgrind-worker", nargs=3, metavar=("CASE", "SIDE", "PASSES"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    cases, unavailable = build_cases()
    if args.callgrind_worker:
        return callgrind_worker(cases, *args.callgrind_worker)
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c.schema_type in wanted]

    import fastavro
    import graphql
    import orjson

    env = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "protobuf": google.protobuf.__version__,
        "fastavro": fastavro.__version__,
        "graphql_core": graphql.__version__,
        "orjson": orjson.__version__,
        "messages_per_case": N_MESSAGES,
        "rounds": args.rounds,
    }
    try:
        from importlib.metadata import version

        env["jsonschema_rs"] = version("jsonschema-rs")
        env["jsonschema"] = version("jsonschema")
        env["memphis_py"] = version("memphis-py")
    except Exception:  # noqa: BLE001, S110
        pass

    rows = []
    for case in cases:
        row: dict[str, Any] = {"type": case.schema_type, "input": case.input_kind, "note": case.note}
        problem = check(case, case.ours, case.ours_messages)
        if problem:
            raise SystemExit(
                f"memphis-fast failed the check for {case.schema_type}/{case.input_kind}: {problem}"
            )
        sides = [(case.ours, case.ours_messages)]
        row["theirs_ns"] = None
        if case.theirs is None:
            row["theirs_problem"] = unavailable.get(case.schema_type, "not available")
        else:
            problem = check(case, case.theirs, case.theirs_messages)
            if problem:
                row["theirs_problem"] = problem
            else:
                sides.append((case.theirs, case.theirs_messages))
        timings = measure(sides, args.rounds, args.min_time)
        row["ours_ns"] = statistics.median(timings[0])
        row["ours_rounds_ns"] = timings[0]
        if len(timings) > 1:
            row["theirs_ns"] = statistics.median(timings[1])
            row["theirs_rounds_ns"] = timings[1]
        row["ratio"] = row["theirs_ns"] / row["ours_ns"] if row.get("theirs_ns") else None
        rows.append(row)
        theirs_text = fmt_ns(row["theirs_ns"]) if row["theirs_ns"] else f"n/a ({row['theirs_problem']})"
        ratio = f"{row['ratio']:.1f}x" if row["ratio"] else "-"
        print(
            f"{case.schema_type:9} {case.input_kind:26} memphis-fast {fmt_ns(row['ours_ns']):>10}   "
            f"memphis-py {theirs_text:>10}   {ratio}",
            flush=True,
        )

    if args.instructions is not None:
        instruction_counts(cases, rows, [w for w in args.instructions.split(",") if w])

    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": rows}, indent=2) + "\n")
    return 0


def _case_id(case: Case) -> str:
    return f"{case.schema_type}/{case.input_kind}"


def callgrind_worker(cases: list[Case], case_id: str, side: str, passes: str) -> int:
    """Run one side of one case: a warm-up pass, then ``passes`` measured passes. The parent
    subtracts a run with 0 passes, leaving the instructions of the measured passes alone."""
    case = next(c for c in cases if _case_id(c) == case_id)
    fn = case.ours if side == "ours" else case.theirs
    messages = case.ours_messages if side == "ours" else case.theirs_messages
    assert fn is not None
    _run(fn, messages, 1)
    _run(fn, messages, int(passes))
    return 0


def _callgrind_ir(case: Case, side: str, passes: int) -> int:
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--callgrind-worker",
        _case_id(case),
        side,
        str(passes),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    for line in done.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip())
    raise RuntimeError(f"no instruction count from callgrind: {done.stderr[-500:]}")


IR_TARGET = 200_000_000  # instructions per measured run: far above the run-to-run jitter (~0.1M)


def _ir_per_message(case: Case, side: str, est_ns: float) -> float:
    messages = case.ours_messages if side == "ours" else case.theirs_messages
    # ~4 instructions per ns; enough passes that the measured work dwarfs start-up jitter.
    passes = max(1, min(5000, math.ceil(IR_TARGET / (max(est_ns, 1.0) * 4 * len(messages)))))
    # Each run twice, keeping the smaller count: a stray extra event cannot inflate either side.
    baseline = min(_callgrind_ir(case, side, 0) for _ in range(2))
    total = min(_callgrind_ir(case, side, passes) for _ in range(2))
    return (total - baseline) / (passes * len(messages))


def instruction_counts(cases: list[Case], rows: list[dict[str, Any]], wanted: list[str]) -> None:
    for case, row in zip(cases, rows, strict=True):
        if wanted and not any(w in _case_id(case) for w in wanted):
            continue
        row["ours_ir"] = _ir_per_message(case, "ours", row["ours_ns"])
        row["theirs_ir"] = None
        if row.get("theirs_ns") is not None:
            row["theirs_ir"] = _ir_per_message(case, "theirs", row["theirs_ns"])
        ratio = row["theirs_ir"] / row["ours_ir"] if row["theirs_ir"] else None
        row["ir_ratio"] = ratio
        theirs_ir = f"{row['theirs_ir']:,.0f}" if row["theirs_ir"] else "n/a"
        print(
            f"{case.schema_type:9} {case.input_kind:26} instructions/message: memphis-fast "
            f"{row['ours_ir']:,.0f}   memphis-py {theirs_ir}   " + (f"{ratio:.1f}x" if ratio else "-"),
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
