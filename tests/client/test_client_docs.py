"""docs/quickstart.md stays runnable: its script runs as-is and prints what the page says."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"


@pytest.mark.timeout(90)
async def test_quickstart_runs(tmp_path: Path) -> None:
    text = QUICKSTART.read_text()
    (script,) = re.findall(r"```python\n(.*?)```", text, re.S)
    (expected,) = re.findall(r"```text\n(.*?)```", text, re.S)
    path = tmp_path / "quickstart.py"
    path.write_text(script)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 80)
    assert proc.returncode == 0, err.decode()
    assert out.decode() == expected
