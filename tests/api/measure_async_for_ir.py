"""Instructions per message (callgrind, client process only): consume() vs async for vs batches().

.venv/bin/python tests/api/measure_async_for_ir.py [RUNS]   # ~4 min per run on a 2-core VM
"""

import asyncio
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import memphis_fast as mf
from memphis_fast.broker import LocalBroker
from memphis_fast.types import Storage

N, N0 = 20000, 2000
CLIENT = str(Path(__file__).with_name("measure_async_for_ir_client.py"))


async def fill(m, st, n):
    await m.station(
        st, storage_type=Storage.MEMORY, retention_type=mf.Retention.MESSAGES, retention_value=10**7
    )
    p = await m.producer(st, "p")
    for i in range(0, n, 1000):
        await p.produce_batch([b"x" * 128] * min(1000, n - i))


def ir(mode, port, st, n):
    out = tempfile.mktemp(prefix="cg-")
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            CLIENT,
            mode,
            str(port),
            st,
            str(n),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    tot = int(re.search(r"^totals: (\d+)", open(out).read(), re.M).group(1))
    os.unlink(out)
    return tot


async def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    async with LocalBroker(memory=True) as b:
        res = {"consume": [], "aiter": [], "batches": []}
        for r in range(runs):
            for mode in ("consume", "aiter", "batches"):
                irs = {}
                for n in (N, N0):
                    st = f"ir-{mode}-{n}-{secrets.token_hex(3)}"
                    async with await mf.connect(**b.connect_kwargs()) as m:
                        await fill(m, st, n)
                    subprocess.run(
                        [sys.executable, CLIENT, mode, str(b.port), st + "w", "0"], capture_output=True
                    )  # warm .pyc
                    irs[n] = await asyncio.to_thread(ir, mode, b.port, st, n)
                per = (irs[N] - irs[N0]) / (N - N0)
                res[mode].append(per)
                print(f"run {r}: {mode:8s} {per:8.0f} instructions/message", flush=True)
        c, a, bt = min(res["consume"]), min(res["aiter"]), min(res["batches"])
        print(
            f"consume() {c:.0f} Ir/msg, async for {a:.0f} Ir/msg (rate ratio {c / a:.3f}), batches() {bt:.0f} Ir/msg (rate ratio {c / bt:.3f})"
        )


asyncio.run(main())
