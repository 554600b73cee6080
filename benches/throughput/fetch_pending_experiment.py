"""Experiment: memphis-fast's ``Consumer.fetch`` as it is ("today") against the same code with
its early return gated on ``num_pending == 0`` of the last message ("pending", the proposal in
benches/RESULTS.md), in one process, the runner's plain fetch loop (``fetch-rr``), 100k
messages on 1 and 3 partitions; every message checked acked once.

    .venv/bin/python benches/throughput/fetch_pending_experiment.py 3
"""
import asyncio
import inspect
import sys
import textwrap
import time

import memphis_fast
from memphis_fast import consumer as cmod
from memphis_fast.bench import runner_common as rc
from memphis_fast.bench import runner_memphis_api as api_mod
from memphis_fast.bench.control import Control
from memphis_fast.bench.runner_raw import preload
from memphis_fast.broker import LocalBroker

src = textwrap.dedent(inspect.getsource(cmod.Consumer.fetch))
src2 = src.replace("            if msgs:\n                remaining = min(remaining, idle)\n",
                   "            if msgs:\n                md = msgs[-1].metadata()\n                if md is None or md[6] == 0:\n                    remaining = min(remaining, idle)\n")
assert src2 != src, "pattern not found"
ns = dict(vars(cmod))
exec(compile(src2, "patched_fetch", "exec"), ns)
original = cmod.Consumer.fetch
patched = ns["fetch"]

handlers = api_mod.make(api_mod.Api("memphis-fast", memphis_fast))

async def one(b, c, mode, parts, run, n=100_000):
    cmod.Consumer.fetch = patched if mode == "pending" else original
    st = f"exp-{mode}-{parts}-{run}-{time.monotonic_ns()}"
    await c.create_station(st, parts)
    await c.create_consumer_group(st, rc.CONSUMER_GROUP)
    await asyncio.to_thread(preload, b.host, b.port, st, parts, n, rc.make_payload(128), user=b.nats_user, password=b.password)
    args = rc.build_parser("memphis-fast").parse_args([
        "--path", "consume-ack", "--variant", "fetch-rr", "--json-out", "/dev/null", "--host", b.host,
        "--port", str(b.port), "--password", b.password, "--station", st, "--partitions", str(parts),
        "--messages", str(n), "--batch", "1000"])
    res = await handlers["consume-ack"](args)
    st_ = await c.wait_acked(st, parts, rc.CONSUMER_GROUP, n)
    await c.delete_station(st)
    e = res["extra"]
    print(f"{parts}p {mode:8s} run {run}: ok={res['ok'] and st_['ack_floor']==n} {res['msgs_per_s']/1000:.1f}k/s short {e['short_fetches']} ({e['short_fetch_s']} s) calls {e['fetch_calls']}", flush=True)

async def main():
    with LocalBroker(memory=True, log_level="warning") as b:
        c = Control(b.nats_kwargs(), b.username)
        await c.connect()
        for run in range(1, int(sys.argv[1]) + 1):
            for parts in (1, 3):
                for mode in ("today", "pending"):
                    await one(b, c, mode, parts, run)
        await c.close()

asyncio.run(main())
