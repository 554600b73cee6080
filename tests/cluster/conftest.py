"""Fixtures for the cluster tests: a 3-node local broker (``LocalBroker(cluster=3)``).

One cluster serves a whole test module (starting one takes a few seconds on 2 cores); every
test starts by waiting for all nodes to be healthy again, since the broker restarts a node that
a test killed. ``MEMPHIS_FAST_FULL=1`` selects the longer runs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from memphis_fast.broker import LocalBroker


def _start(nodes: int) -> LocalBroker:
    broker = LocalBroker(cluster=nodes, node_restart_delay=1.0, startup_timeout=90)
    try:
        broker.start()
        broker.wait_healthy(60)
    except BaseException:
        broker.cleanup()
        raise
    return broker


@pytest.fixture(scope="module")
def cluster3() -> Iterator[LocalBroker]:
    """A 3-node JetStream cluster with the control plane, shared by one module's tests."""
    broker = _start(3)
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def own_cluster() -> Iterator[LocalBroker]:
    """A 3-node cluster for one test alone: what the module's earlier tests left behind (the
    stations, producers and consumers the control-plane kill churned out while a node was
    down) is not on it. A rolling restart waits for every node's streams and consumers to be
    current after each restart; one of those leftovers stayed "not current" on a restarted
    node for over 86 s in one run."""
    broker = _start(3)
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def cluster(cluster3: LocalBroker) -> LocalBroker:
    """:func:`cluster3`, with every node up and current (a previous test may have killed one)."""
    if not cluster3.is_running():
        pytest.fail(f"the cluster broker exited:\n{cluster3.read_log()[-3000:]}")
    cluster3.wait_healthy(90)
    return cluster3


@pytest.fixture
def cluster_factory() -> Iterator[Callable[..., LocalBroker]]:
    """Start a broker of its own (``cluster_factory(nodes=3, **LocalBroker kwargs)``)."""
    started: list[LocalBroker] = []

    def make(nodes: int = 3, **kw: object) -> LocalBroker:
        broker = LocalBroker(cluster=nodes, startup_timeout=90, **kw)  # type: ignore[arg-type]
        started.append(broker)
        broker.start()
        broker.wait_healthy(60)
        return broker

    try:
        yield make
    finally:
        for b in started:
            b.cleanup()


@pytest.fixture
def name() -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"{prefix}-{secrets.token_hex(3)}"

    return make
