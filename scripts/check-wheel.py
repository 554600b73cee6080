#!/usr/bin/env python3
"""Checks built distributions before they are published; exits 1 on any failure.

    python scripts/check-wheel.py dist/*.whl dist/*.tar.gz [--expect-tag TAG ...]

For a wheel:

* the file name's tags and the ``Tag:`` lines of its ``WHEEL`` file agree, every tag is
  ``cp311-abi3-<platform>`` (one wheel for every CPython >= 3.11) and no platform tag is one an
  index rejects (``linux_x86_64``); ``--expect-tag`` requires exact tags
  (e.g. ``cp311-abi3-manylinux_2_17_x86_64``);
* the extension (``memphis_fast/_core.abi3.so``, the only native file) is an ELF for the tag's
  architecture whose version needs (``readelf -V``, binutils) ask for no ``GLIBC_x.y`` newer
  than the lowest glibc its manylinux tags promise (2.17 for ``manylinux2014`` /
  ``manylinux_2_17``), no ``GLIBC_*`` at all for ``musllinux``, and whose ``DT_NEEDED``
  libraries are all on the manylinux / musllinux allowed list; it is stripped (no ``.symtab``,
  no ``.debug_*`` sections);
* when ``auditwheel`` is importable, ``auditwheel show`` must agree that the wheel is
  consistent with its tags (an independent reading of the same ELF facts);
* the metadata names the package, its version, ``Requires-Python``, the SPDX license
  expression, and the ``LICENSE`` file it ships in ``.dist-info/licenses/``.

macOS wheels get the tag and metadata checks and, with ``lipo`` (Xcode), the architecture check.

For an sdist: ``PKG-INFO``, ``pyproject.toml``, ``Cargo.lock``, ``LICENSE`` and both crates'
sources are in it, and no compiled extension is.
"""

# ruff: noqa: T201  (a command-line report)

from __future__ import annotations

import argparse
import email.parser
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "memphis_fast"
EXTENSION = f"{PACKAGE}/_core.abi3.so"
PY_TAG, ABI_TAG = "cp311", "abi3"

# Libraries a manylinux wheel may link against without bundling them (PEP 600 / auditwheel's
# policy list, common to every manylinux tag), and the musl loader / libc for musllinux.
MANYLINUX_LIBS = {
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libc.so.6",
    "libnsl.so.1",
    "libutil.so.1",
    "libpthread.so.0",
    "libresolv.so.2",
    "libcrypt.so.1",
}
MANYLINUX_LOADERS = {
    "x86_64": "ld-linux-x86-64.so.2",
    "aarch64": "ld-linux-aarch64.so.1",
    "i686": "ld-linux.so.2",
    "armv7l": "ld-linux-armhf.so.3",
    "ppc64le": "ld64.so.2",
    "s390x": "ld64.so.1",
}
MUSL_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64", "i686": "i386", "armv7l": "armhf"}
# readelf -h "Machine:" for each wheel architecture.
ELF_MACHINE = {
    "x86_64": "Advanced Micro Devices X86-64",
    "aarch64": "AArch64",
    "i686": "Intel 80386",
    "armv7l": "ARM",
    "ppc64le": "PowerPC64",
    "s390x": "IBM S/390",
}
# The glibc versions that define the GCC_* / GLIBCXX_* symbol versions of the oldest toolchain a
# manylinux tag allows: manylinux2014 is CentOS 7 (GCC 4.8.5: GCC_4.8.0, GLIBCXX_3.4.19).
MANYLINUX2014_GCC = (4, 8, 0)
MANYLINUX2014_GLIBCXX = (3, 4, 19)
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
MACOS_ARCHS = {"x86_64": {"x86_64"}, "arm64": {"arm64"}, "universal2": {"x86_64", "arm64"}}


class Checker:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        print(("  ok    " if ok else "  FAIL  ") + what)
        if not ok:
            self.failures.append(what)
        return ok


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def parse_platform(tag: str) -> tuple[str, tuple[int, int] | None, str]:
    """``manylinux_2_17_x86_64`` -> ("manylinux", (2, 17), "x86_64")."""
    for legacy, glibc in LEGACY_MANYLINUX.items():
        if tag.startswith(legacy + "_"):
            return "manylinux", glibc, tag[len(legacy) + 1 :]
    m = re.fullmatch(r"(manylinux|musllinux)_(\d+)_(\d+)_(.+)", tag)
    if m:
        return m.group(1), (int(m.group(2)), int(m.group(3))), m.group(4)
    m = re.fullmatch(r"macosx_(\d+)_(\d+)_(.+)", tag)
    if m:
        return "macosx", (int(m.group(1)), int(m.group(2))), m.group(3)
    if tag.startswith("linux_"):
        return "linux", None, tag[len("linux_") :]
    return tag, None, ""


def readelf(*args: str) -> str:
    return subprocess.run(
        ["readelf", "--wide", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def version_needs(so: Path) -> dict[str, set[str]]:
    """{library: {"GLIBC_2.17", ...}} from the .gnu.version_r section."""
    needs: dict[str, set[str]] = {}
    current = None
    for line in readelf("-V", str(so)).splitlines():
        m = re.search(r"File:\s*(\S+)", line)
        if m:
            current = m.group(1)
            needs.setdefault(current, set())
            continue
        m = re.search(r"Name:\s*(\S+)\s+Flags", line)
        if m and current is not None:
            needs[current].add(m.group(1))
    return needs


def check_elf(c: Checker, so: Path, family: str, bounds: list[tuple[int, int]], arch: str) -> None:
    header = readelf("-h", str(so))
    machine = re.search(r"Machine:\s*(.+)", header)
    c.check(
        machine is not None and machine.group(1).strip() == ELF_MACHINE.get(arch),
        f"ELF machine {machine.group(1).strip() if machine else '?'} for {arch}",
    )
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("-d", str(so)))
    needs = version_needs(so)
    symbols = {v for vs in needs.values() for v in vs}
    glibc = sorted((version_tuple(v[6:]) for v in symbols if v.startswith("GLIBC_")), reverse=True)
    if family == "manylinux":
        allowed_glibc = min(bounds)
        newest = glibc[0] if glibc else (0,)
        c.check(
            newest <= allowed_glibc,
            f"newest glibc symbol version GLIBC_{'.'.join(map(str, newest))} "
            f"<= {allowed_glibc[0]}.{allowed_glibc[1]} (the tag's glibc)",
        )
        too_new = sorted(
            v for v in symbols if v.startswith("GLIBC_") and version_tuple(v[6:]) > allowed_glibc
        )
        if too_new:
            print("        too new: " + ", ".join(too_new))
        allowed = MANYLINUX_LIBS | {MANYLINUX_LOADERS.get(arch, "")}
        bad = [lib for lib in needed if lib not in allowed]
        c.check(
            not bad,
            f"linked libraries {needed} are all on the manylinux list" + (f" (not: {bad})" if bad else ""),
        )
        if allowed_glibc <= (2, 17):
            gcc = [version_tuple(v[4:]) for v in symbols if v.startswith("GCC_")]
            cxx = [version_tuple(v[8:]) for v in symbols if v.startswith("GLIBCXX_")]
            c.check(
                all(v <= MANYLINUX2014_GCC for v in gcc) and all(v <= MANYLINUX2014_GLIBCXX for v in cxx),
                "no GCC_/GLIBCXX_ symbol version newer than CentOS 7's",
            )
    elif family == "musllinux":
        c.check(not glibc, "no GLIBC_* symbol versions (musl)")
        # musl's loader is libc itself and answers to these names (its dynlink.c "reserved").
        musl = MUSL_ARCH.get(arch, arch)
        mine = {f"libc.musl-{musl}.so.1", f"ld-musl-{musl}.so.1", "libgcc_s.so.1"}
        reserved = re.compile(r"lib(c|pthread|rt|m|dl|util|xnet)\.so(\.\d+)*")
        bad = [lib for lib in needed if lib not in mine and not reserved.fullmatch(lib)]
        c.check(not bad, f"linked libraries {needed} are musl's" + (f" (not: {bad})" if bad else ""))
    sections = re.findall(r"\]\s+(\.\S+)", readelf("-S", str(so)))
    debug = [s for s in sections if s == ".symtab" or s.startswith(".debug")]
    c.check(not debug, f"stripped: no .symtab or .debug_* sections ({so.stat().st_size / 1e6:.2f} MB)")


def check_macho(c: Checker, so: Path, arch: str) -> None:
    lipo = shutil.which("lipo")
    if lipo is None:
        print("  skip  architecture check (no lipo)")
        return
    archs = set(
        subprocess.run(
            [lipo, "-archs", str(so)], check=True, capture_output=True, text=True, timeout=60
        ).stdout.split()
    )
    c.check(archs == MACOS_ARCHS.get(arch, {arch}), f"Mach-O architectures {sorted(archs)} for {arch}")


def check_auditwheel(c: Checker, wheel: Path, platforms: list[str]) -> None:
    try:
        import auditwheel  # noqa: F401
    except ImportError:
        print("  skip  auditwheel show (auditwheel not installed)")
        return
    proc = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True, timeout=120
    )
    text = " ".join(proc.stdout.split())
    ok = proc.returncode == 0 and "is consistent with the following platform tag" in text
    wanted = [p for p in platforms if not p.startswith("manylinux2014")]
    ok = ok and all(p in text for p in wanted)
    c.check(ok, "auditwheel show: consistent with " + ", ".join(wanted))
    if not ok:
        print(proc.stdout + proc.stderr)


def check_metadata(c: Checker, meta_text: str, version: str, files: set[str], licenses_dir: str) -> None:
    meta = email.parser.Parser().parsestr(meta_text)
    c.check(meta.get("Name", "").replace("_", "-") == "memphis-fast", f"Name: {meta.get('Name')}")
    c.check(meta.get("Version") == version, f"Version: {meta.get('Version')} (file name {version})")
    c.check(meta.get("Requires-Python") == ">=3.11", f"Requires-Python: {meta.get('Requires-Python')}")
    c.check(
        meta.get("License-Expression") == "Apache-2.0",
        f"License-Expression: {meta.get('License-Expression')}",
    )
    license_files = meta.get_all("License-File") or []
    c.check("LICENSE" in license_files, f"License-File: {license_files}")
    c.check(f"{licenses_dir}LICENSE" in files, f"{licenses_dir}LICENSE is in the archive")
    c.check(bool(meta.get_all("Project-URL")), f"Project-URL: {len(meta.get_all('Project-URL') or [])} links")
    c.check(
        meta.get("Description-Content-Type") == "text/markdown", "Description-Content-Type: text/markdown"
    )
    body = meta.get_payload() or ""
    relative = re.findall(r"\]\((?!https?://|#)([^)]+)\)", body)
    c.check(
        not relative, "long description has no relative links" + (f" ({relative[:3]})" if relative else "")
    )


def check_wheel(c: Checker, wheel: Path, expect: list[str]) -> None:
    m = re.fullmatch(r"([^-]+)-([^-]+)(?:-\d[^-]*)?-([^-]+)-([^-]+)-([^-]+)\.whl", wheel.name)
    if not c.check(m is not None, f"wheel file name {wheel.name} is well formed"):
        return
    assert m is not None
    name, version, py, abi, plat = m.groups()
    file_tags = {f"{p}-{a}-{pl}" for p in py.split(".") for a in abi.split(".") for pl in plat.split(".")}
    with zipfile.ZipFile(wheel) as zf:
        c.check(zf.testzip() is None, "zip archive reads back (CRCs)")
        files = set(zf.namelist())
        dist_info = f"{name}-{version}.dist-info/"
        wheel_meta = email.parser.Parser().parsestr(zf.read(dist_info + "WHEEL").decode())
        meta_text = zf.read(dist_info + "METADATA").decode()
        natives = sorted(f for f in files if f.endswith((".so", ".dylib", ".pyd", ".dll")))
        with tempfile.TemporaryDirectory() as tmp:
            so = Path(zf.extract(EXTENSION, tmp)) if EXTENSION in files else None
            c.check(name == PACKAGE, f"distribution name {name}")
            record_tags = set(wheel_meta.get_all("Tag") or [])
            c.check(record_tags == file_tags, f"WHEEL Tag lines {sorted(record_tags)} == file name tags")
            c.check(wheel_meta.get("Root-Is-Purelib") == "false", "Root-Is-Purelib: false (platform wheel)")
            c.check(py == PY_TAG and abi == ABI_TAG, f"{py}-{abi}: one abi3 wheel for CPython >= 3.11")
            for tag in expect:
                c.check(tag in file_tags, f"has the expected tag {tag}")
            c.check(natives == [EXTENSION], f"native files: {natives}")
            c.check(f"{PACKAGE}/py.typed" in files, "py.typed is shipped (Typing :: Typed)")
            check_metadata(c, meta_text, version, files, dist_info + "licenses/")
            platforms = plat.split(".")
            parsed = [parse_platform(p) for p in platforms]
            families = {f for f, _, _ in parsed}
            archs = {a for _, _, a in parsed}
            c.check(
                len(families) == 1 and len(archs) == 1, f"one platform family and architecture: {platforms}"
            )
            family, arch = parsed[0][0], parsed[0][2]
            c.check(family in {"manylinux", "musllinux", "macosx"}, f"platform {family} is accepted by PyPI")
            if so is None:
                return
            if family in {"manylinux", "musllinux"}:
                bounds = [b for _, b, _ in parsed if b is not None]
                check_elf(c, so, family, bounds, arch)
                check_auditwheel(c, wheel, platforms)
            elif family == "macosx":
                check_macho(c, so, arch)


def check_sdist(c: Checker, sdist: Path) -> None:
    m = re.fullmatch(r"memphis_fast-([^-]+)\.tar\.gz", sdist.name)
    if not c.check(m is not None, f"sdist file name {sdist.name}"):
        return
    assert m is not None
    root = f"memphis_fast-{m.group(1)}/"
    with tarfile.open(sdist) as tf:
        names = set(tf.getnames())
        for needed in ("PKG-INFO", "pyproject.toml", "Cargo.toml", "Cargo.lock", "LICENSE"):
            c.check(root + needed in names, f"sdist has {needed}")
        for crate in ("memphis-proto", "memphis-core"):
            c.check(root + f"rust/{crate}/src/lib.rs" in names, f"sdist has rust/{crate}/src/lib.rs")
        c.check(root + f"python/{PACKAGE}/__init__.py" in names, "sdist has the Python package")
        binaries = [n for n in names if n.endswith((".so", ".dylib", ".pyd"))]
        c.check(not binaries, f"sdist has no compiled extension {binaries}")
        pkg_info = tf.extractfile(root + "PKG-INFO")
        if pkg_info is not None:
            check_metadata(c, pkg_info.read().decode(), m.group(1), {n[len(root) :] for n in names}, "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="wheels (.whl) and sdists (.tar.gz)")
    parser.add_argument("--expect-tag", action="append", default=[], help="a tag the wheel must have")
    args = parser.parse_args()
    c = Checker()
    for path in args.paths:
        print(path)
        if path.name.endswith(".whl"):
            check_wheel(c, path, args.expect_tag)
        elif path.name.endswith(".tar.gz"):
            check_sdist(c, path)
        else:
            c.check(False, f"{path}: neither a wheel nor an sdist")
    if c.failures:
        print(f"{len(c.failures)} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
