"""README.md's Quickstart stays runnable: its script runs as-is and prints what the section says."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart_section() -> str:
    text = README.read_text()
    start = text.index("\n## Quickstart\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


@pytest.mark.timeout(90)
async def test_quickstart_runs(tmp_path: Path) -> None:
    text = quickstart_section()
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
