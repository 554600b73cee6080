"""Every code block of README.md runs (issue 13), and README refers only to files that exist.

* A ```python block with ``asyncio.run(`` is a complete script: it runs as a process
  (``python -W error``); when the prose after it says "prints" and a ```text block follows, its
  stdout must be exactly that block.
* Any other ```python block is a fragment: the fragments run in document order in one
  namespace inside the test's event loop (top-level ``await`` allowed) with ``broker`` (a local
  broker of this test) and ``memphis`` (a memphis_fast client connected to it) defined, as the
  API text assumes. A fragment with an ``async for`` over ``consumer`` loops until
  ``stop_consume()``, as documented: the harness calls ``consumer.stop_consume()`` once a
  second while such a fragment runs.
* A ```bash block runs with ``bash -euo pipefail`` against a local broker of its own, found as
  a user's ``memphis-fast broker`` would be (its ``broker.json``, through
  ``MEMPHIS_FAST_BROKER_DATA``), with this interpreter's bin/ first on PATH.
* ```text / ```json blocks are output, not code.
* A block right after ``<!-- test: skip (reason) -->`` is not run; each needs a reason and
  there may be only a few (install lines, the CI commands, minutes-long benchmarks, a broker in
  the foreground on port 6666).

examples/ is run by tests/cli/test_examples.py.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import memphis_fast
from memphis_fast.broker import LocalBroker

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [README, ROOT / "docs" / "MIGRATING.md", ROOT / "docs" / "LOCAL-BROKER.md"]

CODE = {"python", "bash"}
NOT_CODE = {"text", "json"}
MAX_SKIPPED = 6
SCRIPT_TIMEOUT = 90.0
SKIP = re.compile(r"<!-- test: skip \((.+)\) -->")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None = None  # the reason
    expected: str | None = None  # the ```text block that the prose says it prints

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_script(self) -> bool:
        return self.lang == "python" and "asyncio.run(" in self.code


def parse_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    prose: list[str] = []  # the lines since the last block
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            lang = line[3:].strip()
            start = i
            i += 1
            body: list[str] = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            code = "\n".join(body) + "\n"
            before = [p for p in prose if p.strip()]
            mark = SKIP.fullmatch(before[-1].strip()) if before else None
            prev = blocks[-1] if blocks else None
            if (
                lang == "text"
                and prev is not None
                and prev.is_script
                and prev.expected is None
                and "prints" in " ".join(prose)
            ):
                prev.expected = code
            blocks.append(Block(path, start + 1, lang, code, mark.group(1) if mark else None))
            prose = []
        else:
            prose.append(line)
        i += 1
    return blocks


README_BLOCKS = parse_blocks(README)


def _code(kind: str) -> list[Block]:
    out = []
    for b in README_BLOCKS:
        if b.skip or b.lang not in CODE:
            continue
        if kind == "script" and b.is_script:
            out.append(b)
        elif kind == "fragment" and b.lang == "python" and not b.is_script:
            out.append(b)
        elif kind == "bash" and b.lang == "bash":
            out.append(b)
    return out


def _env(**extra: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMPHIS_")}
    env.pop("XDG_DATA_HOME", None)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_every_block_is_code_or_output_and_few_are_skipped() -> None:
    unknown = [f"{b.where}: ```{b.lang}" for b in README_BLOCKS if b.lang not in CODE | NOT_CODE]
    assert not unknown, f"blocks without a rule (give them a language: python, bash or text): {unknown}"
    skipped = [b for b in README_BLOCKS if b.skip]
    assert all(len(b.skip or "") > 10 for b in skipped), "every skip needs a reason"
    assert len(skipped) <= MAX_SKIPPED, [f"{b.where}: {b.skip}" for b in skipped]
    run = [b for b in README_BLOCKS if b.lang in CODE and not b.skip]
    assert len(run) >= 8, len(run)  # the quickstart, the tour, the cluster, fragments, the CLI
    orphans = [b.where for b in README_BLOCKS if b.skip and b.lang not in CODE]
    assert not orphans, f"a skip mark on a block that is not code: {orphans}"


@pytest.mark.parametrize("block", _code("script"), ids=lambda b: b.where)
def test_script_runs(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "example.py"
    path.write_text(block.code)
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(path)],
        capture_output=True,
        text=True,
        env=_env(HOME=str(tmp_path)),
        cwd=tmp_path,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, f"{block.where} failed:\n{proc.stdout}\n{proc.stderr}"
    if block.expected is not None:
        assert proc.stdout == block.expected, f"{block.where} printed:\n{proc.stdout}"


async def _run_fragment(block: Block, ns: dict[str, Any]) -> None:
    code = compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, ns)  # noqa: S307 - README's own code
    if not inspect.iscoroutine(result):
        return
    task = asyncio.ensure_future(result)
    stops = 0
    async with asyncio.timeout(30):
        while not task.done():
            await asyncio.wait([task], timeout=1.0)
            consumer = ns.get("consumer")
            if not task.done() and "async for" in block.code and isinstance(consumer, memphis_fast.Consumer):
                stops += 1
                await consumer.stop_consume()  # the documented way out of `async for msg in consumer`
        await task
    assert stops <= 5, f"{block.where}: the loops needed {stops} stop_consume() calls"


@pytest.mark.timeout(120)
async def test_fragments_run_in_order(fresh_broker: LocalBroker) -> None:
    fragments = _code("fragment")
    assert fragments
    memphis = await memphis_fast.connect(**fresh_broker.connect_kwargs())
    ns: dict[str, Any] = {"__name__": "readme", "broker": fresh_broker, "memphis": memphis}
    try:
        for block in fragments:
            try:
                await _run_fragment(block, ns)
            except Exception as exc:
                raise AssertionError(f"{block.where} failed: {exc!r}\n{block.code}") from exc
    finally:
        await memphis.close()


@pytest.mark.cli
@pytest.mark.parametrize("block", _code("bash"), ids=lambda b: b.where)
def test_bash_block_runs(block: Block, fresh_broker: LocalBroker, tmp_path: Path) -> None:
    assert fresh_broker.data_dir is not None
    env = _env(HOME=str(tmp_path), MEMPHIS_FAST_BROKER_DATA=str(fresh_broker.data_dir))
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, f"{block.where} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr


# -- what README says, and what it refers to ---------------------------------------------------

REPO_DIRS = ("docs/", "tests/", "benches/", "scripts/", "examples/", "python/", "rust/", ".ci/")


def _references(path: Path) -> list[str]:
    text = path.read_text()
    refs = [m.group(1) for m in re.finditer(r"\]\(([^)#\s]+)[^)]*\)", text) if "://" not in m.group(1)]
    refs += [
        m.group(1)
        for m in re.finditer(r"`([\w./-]+\.(?:md|py|sh|toml|json|txt|png|pyi))(?:::[\w\[\]-]+)?`", text)
        if m.group(1).startswith(REPO_DIRS)
    ]
    return refs


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_referenced_files_exist(path: Path) -> None:
    assert path.is_file()
    missing = []
    for ref in _references(path):
        base = path.parent if ref.startswith("../") or path != README else ROOT
        target = (base / ref).resolve()
        if not target.exists() and not (ROOT / ref).exists():
            missing.append(ref)
    assert not missing, f"{path.name} refers to files that are not in the repository: {missing}"
    text = path.read_text()
    assert "feature-matrix" not in text
    assert not re.search(r"\bspec §", text), "cite docs/protocol.md §N"
    assert not re.search(r"(?<!')memphis-fast\[\w+\]", text.replace("'memphis-fast[", "")), (
        "quote the extra: pip install 'memphis-fast[broker]'"
    )


def test_readme_is_for_users_first() -> None:
    heads = re.findall(r"^## (.+)$", README.read_text(), re.M)
    order = [
        "Install",
        "Quickstart",
        "Local broker",
        "Migrating from memphis-py",
        "API",
        "Performance",
        "Reliability",
        "Development",
    ]
    assert [h for h in heads if h in order] == order, heads
    text = README.read_text()
    first = text.index("\n## Local broker\n")
    for cmd in ("bash scripts/setup.sh", "bash scripts/test.sh", ".venv/bin/memphis-fast bench --quick"):
        assert text.index(cmd) < first, f"{cmd!r} belongs near the top"
    assert "once published: `pip install" in text.lower() or "Once published" in text
    quick = text[text.index("\n## Quickstart\n") : text.index("\n## ", text.index("\n## Quickstart\n") + 1)]
    (code,) = re.findall(r"```python\n(.*?)```", quick, re.S)
    lines = [ln for ln in code.splitlines() if ln.strip() and not ln.startswith(("import ", "from "))]
    assert len(lines) <= 10, f"the quickstart has {len(lines)} lines of code"
