"""README's API section lists every public name of memphis_fast (``__all__``) and every public
method of the public classes with its full signature (each parameter, in order), so the
reference cannot fall behind the code. Runs without a broker."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import memphis_fast as mf

README = Path(__file__).resolve().parents[2] / "README.md"
CLASSES = (mf.Memphis, mf.Station, mf.Producer, mf.Consumer, mf.Message, mf.Headers)


def _api_section() -> str:
    text = README.read_text()
    start = text.index("\n## API\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _reference_block() -> str:
    section = _api_section()
    ref = section[section.index("### Reference") :]
    (block,) = re.findall(r"```text\n(.*?)```", ref, re.S)
    return " ".join(block.split())  # unwrap the continuation lines


def _public_methods() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for cls in CLASSES:
        for name, value in vars(cls).items():
            if isinstance(value, property) or not callable(value):
                continue
            if name.startswith("_") and name not in ("__init__", "__aiter__", "__aenter__", "__aexit__"):
                continue
            out.append((f"{cls.__name__}.{name}", getattr(cls, name)))
    out.append(("connect", mf.connect))
    return out


def test_every_public_name_is_in_the_api_section() -> None:
    section = _api_section()
    missing = [n for n in mf.__all__ if f"`{n}`" not in section]
    assert not missing, f"README API section does not mention {missing}"


def test_every_public_method_is_listed_with_its_signature() -> None:
    block = _reference_block()
    problems = []
    for qual, func in _public_methods():
        m = re.search(rf"(?:^| |async ){re.escape(qual)}\((.*?)\)(?: ->|$| )", block)
        if m is None:
            problems.append(f"{qual} is not listed")
            continue
        listed = [p.strip().split("=")[0].lstrip("*") for p in m.group(1).split(",") if p.strip()]
        params = [p for p in inspect.signature(func).parameters if p != "self"]  # type: ignore[arg-type]
        if listed != params:
            problems.append(f"{qual}: README lists {listed}, the code has {params}")
        is_async = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
        if is_async != (f"async {qual}(" in block):
            problems.append(f"{qual}: README says {'not ' if is_async else ''}async")
    assert not problems, "\n".join(problems)


def test_public_properties_are_mentioned() -> None:
    section = _api_section()
    missing = [
        f"{cls.__name__}.{n}"
        for cls in CLASSES
        for n, v in vars(cls).items()
        if isinstance(v, property) and f"`{cls.__name__}.{n}`" not in section
    ]
    assert not missing, missing
