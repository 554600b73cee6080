"""What the experiment scripts beside this file share: nats-server's CPU time and wake-ups from
/proc, a connection to the local broker they run against, the raw reference's pipelined produce."""

import os
import time

import memphis_fast as mf


def cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def connect(port: int) -> mf.Memphis:
    m = mf.Memphis()
    await m.connect(host="127.0.0.1", port=port, username="root", password="memphis")
    return m


async def preloaded_consumer(
    m: mf.Memphis, port: int, name: str, n: int, batch: int
) -> tuple[object, object]:
    """A new memory station ``name`` holding ``n`` 128-byte messages (the raw reference's
    preload) and a consumer of the bench's group on it: ``(station, consumer)``."""
    from memphis_fast.bench import runner_common as rc
    from memphis_fast.bench import runner_raw as rr

    st = await m.station(name=name, storage_type="memory")
    cons = await m.consumer(
        station_name=name, consumer_name="c", consumer_group=rc.CONSUMER_GROUP, batch_size=batch
    )
    stored = rr.preload(
        "127.0.0.1", port, name, 1, n, rc.make_payload(128), user="root$1", password="memphis"
    )
    assert stored == n, stored
    return st, cons


def io_calls(pid: int) -> tuple[int, int]:
    """read(2) and write(2) calls of process ``pid`` so far (``/proc/<pid>/io`` syscr, syscw).
    nats-server reads and writes its sockets with them; Python's asyncio uses recv/send, which
    these do not count."""
    with open(f"/proc/{pid}/io") as f:
        d = dict(line.split(": ") for line in f.read().splitlines())
    return int(d["syscr"]), int(d["syscw"])


def wakeups(pid: int) -> int:
    """Voluntary context switches of all of process ``pid``'s threads (its wake-ups)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/status") as f:
            for line in f:
                if "voluntary_ctxt_switches" in line:
                    total += int(line.split()[1])
    return total


async def raw_pipelined(port: int, name: str, n: int, nats_pid: int) -> tuple[float, float, int, int]:
    """The raw reference's pipelined produce of ``n`` 128-byte messages into a new memory
    station ``name`` (destroyed after): rate, nats-server CPU µs per message, its wake-ups,
    messages acked."""
    from memphis_fast.bench import runner_common as rc
    from memphis_fast.bench import runner_raw as rr

    m = await connect(port)
    st = await m.station(name=name, storage_type="memory")
    c = rr.RawClient("127.0.0.1", port, user="root$1", password="memphis")
    fr = rr.Frames([f"{rc.internal_name(name)}$1.final"], rc.memphis_headers(), rc.make_payload(128))
    s0, x0, t0 = cpu(nats_pid), wakeups(nats_pid), time.perf_counter()
    cnt = rr.publish_pipelined(c, fr, n)
    dt = time.perf_counter() - t0
    out = (n / dt, (cpu(nats_pid) - s0) / n * 1e6, wakeups(nats_pid) - x0, cnt.acked)
    c.close()
    await st.destroy()
    await m.close()
    return out
