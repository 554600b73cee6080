"""A station with partitions: route by key (the same key, the same partition) or by number,
and consume one partition.

    python examples/partitions.py                     # starts a local broker of its own
    MEMPHIS_SERVER=localhost MEMPHIS_PASSWORD=memphis python examples/partitions.py   # your broker
"""

import asyncio
import os

import memphis_fast


async def run(memphis: memphis_fast.Memphis) -> None:
    station = await memphis.station("example-payments", partitions_number=3)
    producer = await memphis.producer("example-payments", "payment-service")

    # By key: murmur3 of the key picks the partition (bit-exact with memphis-py).
    per_customer: dict[str, set[str]] = {}
    for i in range(12):
        customer = f"customer-{i % 4}"
        result = await producer.produce(f"payment {i}".encode(), producer_partition_key=customer)
        per_customer.setdefault(customer, set()).add(result.stream)
    assert all(len(streams) == 1 for streams in per_customer.values())
    for customer, streams in sorted(per_customer.items()):
        print(f"{customer} -> {streams.pop()}")

    # By number (1-based); without either, messages go round-robin.
    result = await producer.produce(b"to partition 2", producer_partition_number=2)
    print(f"partition 2 -> {result.stream}")

    consumer = await memphis.consumer("example-payments", "auditor", batch_size=50)
    msgs = await consumer.fetch(50, consumer_partition_number=2)  # one partition only
    for msg in msgs:
        await msg.ack()
    print(f"fetched {len(msgs)} message(s) from partition 2: {[m.data.decode() for m in msgs]}")
    assert msgs and all(m.partition == 2 for m in msgs)

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
