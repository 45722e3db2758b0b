"""The relays' partitioner must put every key on the partition aiokafka's own default
partitioner (and the Java client) would: a learner's events keep one partition, whatever
producer sent the earlier ones."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from microcred_shared.contract.events import learner_key
from microcred_shared.outbox import make_producer, murmur2, partition_of


def test_murmur2_equals_aiokafkas_for_keys_of_every_length_and_content() -> None:
    rng = random.Random(12)
    keys = [bytes(rng.getrandbits(8) for _ in range(n)) for n in range(0, 130) for _ in range(8)]
    keys += [b"", b"\x00", b"\xff" * 7, "é中😀".encode(), b"a" * 1000]
    keys += [learner_key(f"learner{n}@example.org").encode() for n in range(200)]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key), key


def test_the_partition_of_a_key_is_the_default_partitioners() -> None:
    default = DefaultPartitioner()
    for count in (1, 2, 3, 8, 12, 50):
        partitions = list(range(count))
        for n in range(300):
            key = learner_key(f"p{n}@example.org").encode()
            assert partition_of(key, partitions, partitions[1:]) == \
                default(key, partitions, partitions[1:])


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert {partition_of(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert partition_of(None, [5], []) == 5


async def test_the_relays_producer_uses_it() -> None:
    producer = make_producer("localhost:9092", "test")  # not started: no connection
    assert producer._partitioner is partition_of
