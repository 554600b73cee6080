"""Dead-letter station (DLS): a message the consumer gives up on (``dead_letter(reason)``) and a
poison message (not acknowledged within ``max_msg_deliveries`` deliveries) leave the group's
queue and are recorded by the broker; with ``dls_station=`` they are also produced to a station
of your own, which any consumer can read.

    python examples/dls.py                            # starts a local broker of its own
    MEMPHIS_SERVER=localhost MEMPHIS_PASSWORD=memphis python examples/dls.py   # your broker
"""

import asyncio
import os

import memphis_fast


async def run(memphis: memphis_fast.Memphis) -> None:
    jobs = await memphis.station("example-jobs", dls_station="example-jobs-dead")
    producer = await memphis.producer("example-jobs", "scheduler")
    for job in (b"job 1", b"job 2: malformed", b"job 3", b"job 4: crashes the worker"):
        await producer.produce(job)

    worker = await memphis.consumer(
        "example-jobs", "worker", max_msg_deliveries=2, max_ack_time_ms=1000, batch_size=10
    )
    done: list[str] = []

    async def work(msgs: list[memphis_fast.Message], error: Exception | None, context: dict) -> None:
        for msg in msgs:
            if b"malformed" in msg.data:
                await msg.dead_letter("malformed job")  # never redelivered to this group
            elif b"crashes" in msg.data:
                await msg.nack()  # redelivered at once; after 2 deliveries it is poison
            else:
                done.append(msg.data.decode())
                await msg.ack()

    worker.consume(work)

    # The dead letters arrive in the dls_station like any other message.
    dead = await memphis.consumer("example-jobs-dead", "ops", batch_size=10)
    letters: list[bytes] = []
    async with asyncio.timeout(60):
        while len(letters) < 2:
            for msg in await dead.fetch(10):
                print("dead letter:", msg.data.decode())
                letters.append(msg.data)
                await msg.ack()
    await worker.stop_consume()
    print("done:", done)
    assert sorted(letters) == [b"job 2: malformed", b"job 4: crashes the worker"]
    assert done == ["job 1", "job 3"]

    await dead.destroy()
    await worker.destroy()
    await producer.destroy()
    await jobs.destroy()
    await (await memphis.station("example-jobs-dead")).destroy()


async def main() -> None:
    server = os.environ.get("MEMPHIS_SERVER")
    if server:  # a broker of yours
        user = os.environ.get("MEMPHIS_USER", "root")
        password = os.environ.get("MEMPHIS_PASSWORD", "memphis")
        async with memphis_fast.connect(host=server, username=user, password=password) as memphis:
            await run(memphis)
        return
    from memphis_fast.broker import LocalBroker  # pip install 'memphis-fast[broker]'

    async with LocalBroker() as broker, memphis_fast.connect(**broker.connect_kwargs()) as memphis:
        await run(memphis)


if __name__ == "__main__":
    asyncio.run(main())
