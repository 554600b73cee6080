"""Produce to a station: awaited (one acknowledgement each), nonblocking (pipelined), batch.

python examples/producer.py                       # starts a local broker of its own
MEMPHIS_SERVER=localhost MEMPHIS_PASSWORD=memphis python examples/producer.py   # your broker
"""

import asyncio
import os

import memphis_fast
from memphis_fast import Headers, MemphisProduceError


async def run(memphis: memphis_fast.Memphis) -> None:
    station = await memphis.station("example-orders")
    producer = await memphis.producer("example-orders", "order-service")

    # Awaited: returns once the broker stored the message (raises if it was not).
    headers = Headers()
    headers.add("source", "examples/producer.py")
    result = await producer.produce({"id": 1, "total": 9.5}, headers=headers, msg_id="order-1")
    print(f"stored order 1 in {result.stream} at sequence {result.sequence}")

    # The same msg_id again: the broker keeps one copy.
    again = await producer.produce({"id": 1, "total": 9.5}, msg_id="order-1")
    print(f"re-sent order 1: duplicate={again.duplicate}")

    # Nonblocking: returns once queued; flush() waits for every acknowledgement and raises
    # a MemphisProduceError listing any message that was not stored.
    for i in range(2, 1002):
        await producer.produce(f"order {i}".encode(), nonblocking=True)
    try:
        await producer.flush()
    except MemphisProduceError as err:
        for failure in err.failures:
            print("not stored:", failure.index, failure.reason, failure.error)
        raise
    print("1000 nonblocking messages acknowledged")

    # A batch: one call, one write, a ProduceResult per message.
    results = await producer.produce_batch([b"a", b"b", b"c"])
    print("batch sequences:", [r.sequence for r in results])
    assert all(r.stored for r in results)

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
