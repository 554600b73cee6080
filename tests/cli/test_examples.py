"""Every file in examples/ runs to completion (each starts a local broker of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import clean_env

pytestmark = pytest.mark.cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: not programs
DOCS = {"README.md"}
REQUIRED = {"producer.py", "consumer.py", "partitions.py", "schemas.py", "dls.py", "cli.sh"}
TIMEOUT = 120.0


def _examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.is_file() and p.name not in DOCS)


def test_the_examples_are_there() -> None:
    assert REQUIRED <= {p.name for p in _examples()}


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.name)
def test_example_runs(path: Path, tmp_path: Path) -> None:
    if path.suffix == ".py":
        cmd = [sys.executable, str(path)]
    elif path.suffix == ".sh":
        cmd = ["bash", str(path)]
    else:
        pytest.fail(f"examples/{path.name}: no rule to run it (add one here or list it in DOCS)")
    # The interpreter's bin/ first: the shell example calls `memphis-fast` and the broker
    # finds nats-server there; HOME in a temporary directory keeps the user's data dir out.
    bin_dir = str(Path(sys.executable).parent)
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", HOME=str(tmp_path))
    env.pop("XDG_DATA_HOME", None)
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=TIMEOUT, check=False
    )
    assert proc.returncode == 0, (
        f"examples/{path.name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    assert proc.stdout.strip(), f"examples/{path.name} printed nothing"
    assert "Traceback" not in proc.stderr, proc.stderr
