"""The ``cli`` fixture: run the command line against the session's local broker."""

from __future__ import annotations

import pytest
from cli_support import Cli, Result, clean_env, run

from memphis_fast.broker import LocalBroker


@pytest.fixture
def cli(broker: LocalBroker) -> Cli:
    """``cli("pub", "st", "x")``: a CLI process that finds the session broker through its
    broker.json (MEMPHIS_FAST_BROKER_DATA = the broker's data directory), as a user who
    started ``memphis-fast broker`` with no options would."""
    assert broker.data_dir is not None and (broker.data_dir / "broker.json").is_file()
    env = clean_env(MEMPHIS_FAST_BROKER_DATA=str(broker.data_dir))

    def _run(*args: str, input: bytes | str | None = None, script: bool = False, **kw: str) -> Result:
        return run(*args, input=input, env={**env, **kw}, script=script)

    return _run
