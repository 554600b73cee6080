"""Partition routing must match memphis-py bit for bit: murmur3 x86 32-bit, seed 31,
unsigned, checked against the spec's vectors (section 7.5) and against ``mmh3``."""

from __future__ import annotations

import mmh3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memphis_fast import _core

# Spec 7.5: key -> (hash, index for len(P) = 2, 3, 4, 5, 10)
SPEC_VECTORS = [
    ("", 1257683291, (1, 2, 3, 1, 1)),
    ("a", 3387765255, (1, 0, 3, 0, 5)),
    ("key", 2580712894, (0, 1, 2, 4, 4)),
    ("user-42", 660284634, (0, 0, 2, 4, 4)),
    ("2ndPartition", 122197930, (0, 1, 2, 0, 0)),
    ("hello", 168865661, (1, 2, 1, 1, 1)),
]


def test_seed_must_match_memphis_py() -> None:
    # Must match memphis-py `Memphis.SEED = 31` and memphis.go (docs/protocol.md §7.5); the Rust constant
    # carries the same "must match" note and its own test.
    assert _core.PARTITION_KEY_SEED == 31


@pytest.mark.parametrize(("key", "hash_", "indexes"), SPEC_VECTORS)
def test_spec_vectors(key: str, hash_: int, indexes: tuple[int, ...]) -> None:
    assert _core.murmur3(key) == hash_
    assert _core.murmur3(key, 31) == hash_
    assert mmh3.hash(key, 31, signed=False) == hash_
    for n, want in zip((2, 3, 4, 5, 10), indexes, strict=True):
        parts = list(range(1, n + 1))
        assert _core.Partitioner(parts).for_key(key) == parts[want]


@given(st.text(max_size=64), st.integers(min_value=0, max_value=2**32 - 1))
def test_matches_mmh3_on_text(key: str, seed: int) -> None:
    assert _core.murmur3(key, seed) == mmh3.hash(key, seed, signed=False)


@given(st.binary(max_size=64))
def test_matches_mmh3_on_bytes(key: bytes) -> None:
    assert _core.murmur3(key) == mmh3.hash(key, 31, signed=False)


@given(st.text(min_size=1, max_size=20), st.lists(st.integers(1, 1000), min_size=1, max_size=12, unique=True))
def test_partition_for_key_is_memphis_py_formula(key: str, parts: list[int]) -> None:
    # memphis-py: partitions_list[mmh3.hash(key, seed, signed=False) % len(partitions_list)]
    assert _core.Partitioner(parts).for_key(key) == parts[mmh3.hash(key, 31, signed=False) % len(parts)]


def test_round_robin_and_empty() -> None:
    p = _core.Partitioner([3, 1, 2])
    assert p.partitions == [3, 1, 2] and len(p) == 3
    assert [p.next() for _ in range(7)] == [3, 1, 2, 3, 1, 2, 3]
    empty = _core.Partitioner([])
    with pytest.raises(ValueError):
        empty.next()
    with pytest.raises(ValueError):
        empty.for_key("k")
