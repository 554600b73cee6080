"""Fixtures of the pytest-benchmark suite (``benches/test_bench_paths.py``).

One local broker (memory storage, free port) for the session; a fresh memory-storage station
per round, deleted after it; every round's messages are checked on the broker (stored, or
received and acked) in the round's teardown, so a fast but wrong round fails the test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from memphis_fast.bench.control import Control
from memphis_fast.broker import LocalBroker


@dataclass
class Env:
    broker: LocalBroker
    runner: asyncio.Runner
    control: Control

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def new_station(self, tag: str, *, schema: str = "", partitions: int | None = None) -> str:
        if partitions is None:
            partitions = int(os.environ.get("MEMPHIS_BENCH_PARTITIONS", "1"))
        name = f"pb-{tag}-{secrets.token_hex(4)}"
        self.run(self.control.create_station(name, partitions, schema))
        return name

    def delete_station(self, name: str) -> None:
        self.run(self.control.delete_station(name))

    def connect_kwargs(self, host: str | None = None) -> dict[str, Any]:
        kw = self.broker.connect_kwargs()
        if host:
            kw["host"] = host
        return kw


@pytest.fixture(scope="session")
def env() -> Iterator[Env]:
    broker = LocalBroker(memory=True, log_level="warning")
    broker.start()
    runner = asyncio.Runner()
    control = Control(broker.nats_kwargs(), broker.username)
    try:
        runner.run(control.connect())
        yield Env(broker, runner, control)
    finally:
        try:
            runner.run(control.close())
        finally:
            runner.close()
            broker.cleanup()


@pytest.fixture
def report_rate(benchmark: Any) -> Callable[[int], None]:
    """After ``benchmark.pedantic``: record msgs/s of the median round in extra_info."""

    def record(n: int) -> None:
        median = benchmark.stats.stats.median
        benchmark.extra_info["messages"] = n
        benchmark.extra_info["msgs_per_s"] = round(n / median) if median else None

    return record
