"""Schemaverse: create a JSON schema, enforce it on a station; a message that does not match is
not produced (MemphisSchemaError) and goes to the dead-letter station instead.

    python examples/schemas.py                        # starts a local broker of its own
    MEMPHIS_SERVER=localhost MEMPHIS_PASSWORD=memphis python examples/schemas.py   # your broker
"""

import asyncio
import json
import os
import tempfile

import memphis_fast
from memphis_fast import MemphisSchemaError

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "total": {"type": "number", "minimum": 0}},
    "required": ["id", "total"],
}


async def run(memphis: memphis_fast.Memphis) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "order.json")
        with open(path, "w") as f:
            json.dump(ORDER_SCHEMA, f)
        await memphis.create_schema("example-order", "json", path)  # json, avro, protobuf, graphql

    station = await memphis.station("example-checked-orders")
    await memphis.enforce_schema("example-order", "example-checked-orders")
    producer = await memphis.producer("example-checked-orders", "checkout")

    result = await producer.produce({"id": 1, "total": 9.5})  # validated in the client
    print(f"valid order stored at sequence {result.sequence}")

    try:
        await producer.produce({"id": "one", "total": -1})
    except MemphisSchemaError as err:
        print(f"rejected: {err}")
    else:
        raise AssertionError("the invalid order was produced")

    consumer = await memphis.consumer("example-checked-orders", "billing")
    msgs = await consumer.fetch(10)
    for msg in msgs:
        order = await msg.get_data_deserialized()  # decoded with the station's schema: a dict
        print("consumed", order)
        await msg.ack()
    assert [await m.get_data_deserialized() for m in msgs] == [{"id": 1, "total": 9.5}]

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
