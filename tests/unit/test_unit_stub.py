"""The hand-written stub of the Rust module is its documented boundary: it must match the
built module exactly (names, signatures, constant values), and the package ships it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import memphis_fast
from memphis_fast import _core

HERE = Path(__file__).parent
PACKAGE = Path(memphis_fast.__file__).parent


def test_package_is_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_core.pyi").is_file()


@pytest.mark.timeout(120)
def test_stub_matches_the_built_module(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "memphis_fast._core",
            "--allowlist",
            str(HERE / "stubtest_allowlist.txt"),
            "--mypy-config-file",
            str(PACKAGE.parent.parent / "pyproject.toml"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"MYPY_CACHE_DIR": str(tmp_path / ".mypy_cache"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_runtime_name_is_in_the_stub() -> None:
    stub = (PACKAGE / "_core.pyi").read_text()
    for name in _core.__all__:
        assert f'"{name}"' in stub, name
