"""Consume from a station: ``async for`` over a consumer, a callback with ``consume()``, and
one batch at a time with ``fetch()``. Every message is acknowledged after it was handled.

    python examples/consumer.py                       # starts a local broker of its own
    MEMPHIS_SERVER=localhost MEMPHIS_PASSWORD=memphis python examples/consumer.py   # your broker
"""

import asyncio
import os

import memphis_fast


async def run(memphis: memphis_fast.Memphis) -> None:
    station = await memphis.station("example-events")
    producer = await memphis.producer("example-events", "event-source")
    for i in range(30):
        await producer.produce(f"event {i}".encode(), nonblocking=True)
    await producer.flush()

    # Each consumer group gets every message of the station once; three groups, three styles.

    # 1. async for: the consumer pulls in the background (the next batch travels while this
    #    one is handled); stop_consume() ends the loop.
    reader = await memphis.consumer("example-events", "reader", batch_size=10)
    seen = 0
    async for msg in reader:
        seen += 1
        await msg.ack()
        if seen == 30:
            break
    await reader.stop_consume()
    print(f"async for: {seen} messages")

    # 2. a callback: called with each batch until stop_consume().
    counter = await memphis.consumer("example-events", "counter", batch_size=10)
    done = asyncio.Event()
    handled: list[bytes] = []

    async def handle(msgs: list[memphis_fast.Message], error: Exception | None, context: dict) -> None:
        for msg in msgs:
            handled.append(msg.data)
            await msg.ack()
        if len(handled) == 30:
            done.set()

    counter.consume(handle)
    await asyncio.wait_for(done.wait(), 30)
    await counter.stop_consume()
    print(f"consume(): {len(handled)} messages")

    # 3. fetch: one batch at a time, waiting at most batch_max_time_to_wait_ms for it to fill.
    auditor = await memphis.consumer("example-events", "auditor")
    fetched: list[memphis_fast.Message] = []
    while len(fetched) < 30:
        batch = await auditor.fetch(10)
        for msg in batch:
            await msg.ack()
        fetched.extend(batch)
    print(f"fetch(): {len(fetched)} messages, the last one {fetched[-1].data.decode()!r}")
    assert seen == len(handled) == len(fetched) == 30

    for consumer in (reader, counter, auditor):
        await consumer.destroy()
    await producer.destroy()
    await station.destroy()


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
