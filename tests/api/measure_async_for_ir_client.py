import asyncio
import sys

import memphis_fast as mf

mode, port, station, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])


async def main():
    async with await mf.connect(host="127.0.0.1", port=port, username="root", password="memphis") as m:
        c = await m.consumer(station, "g", batch_size=1000, batch_max_time_to_wait_ms=2000)
        got = 0
        if n == 0:
            return
        if mode == "consume":
            done = asyncio.Event()

            async def cb(msgs, err, ctx):
                nonlocal got
                for msg in msgs:
                    await msg.ack()
                got += len(msgs)
                if got >= n:
                    done.set()

            c.consume(cb)
            await done.wait()
            await c.stop_consume()
        elif mode == "batches":
            async for msgs in c.batches():
                for msg in msgs:
                    await msg.ack()
                got += len(msgs)
                if got >= n:
                    break
        else:
            async for msg in c:
                await msg.ack()
                got += 1
                if got >= n:
                    break
        assert got == n, got


asyncio.run(main())
