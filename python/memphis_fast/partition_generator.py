"""Round-robin partition generator (``memphis.partition_generator``), on the Rust core."""

from __future__ import annotations

from . import _core
from .exceptions import MemphisError

__all__ = ["PartitionGenerator", "check_partition_number"]


def check_partition_number(partitions: list[int] | None, partition_number: int, station_name: str) -> None:
    """memphis-py's partition-number rules and texts (docs/protocol.md §7.5)."""
    if partitions is None:
        raise MemphisError(f"Partition {partition_number} does not exist in station {station_name}")
    if partition_number < 1 or partition_number > len(partitions):
        raise MemphisError("Partition number is out of range")
    if partition_number not in partitions:
        raise MemphisError(f"Partition {partition_number} does not exist in station {station_name}")


class PartitionGenerator:
    """``next(gen)`` returns the station's partitions in list order, round-robin."""

    __slots__ = ("_p", "partitions_list", "length")

    def __init__(self, partitions_list: list[int]) -> None:
        self.partitions_list = list(partitions_list)
        self.length = len(self.partitions_list)
        self._p = _core.Partitioner(self.partitions_list)

    def __next__(self) -> int:
        return int(self._p.next())

    def __iter__(self) -> PartitionGenerator:
        return self

    def for_key(self, key: str) -> int:
        """The partition of a key: ``partitions[murmur3(key, seed=31) % len]`` (as memphis-py)."""
        return int(self._p.for_key(key))
