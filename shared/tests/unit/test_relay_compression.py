"""The outbox relay's producer compresses its record batches with the codec the service is
configured with (MICROCRED_KAFKA_COMPRESSION, none unless set; ADR 2). The real broker and
the read-back by aiokafka and by the Java client: tests/e2e/test_compressed_records.py."""

from __future__ import annotations

import struct

import pytest
from pydantic import ValidationError

from microcred_shared.outbox import make_producer
from microcred_shared.settings import ServiceSettings

# The codec in a record batch's attributes (lowest three bits), as Kafka numbers them.
CODECS = {"none": 0, "lz4": 3, "zstd": 4}


async def codec_of_a_batch(compression: str) -> int:
    producer = make_producer("localhost:9092", "test", compression=compression)  # not started
    batch = producer.create_batch()
    for n in range(5):
        batch.append(key=b"learner", value=b'{"credential": "%d", "padding": "%s"}'
                     % (n, b"x" * 400), timestamp=None, headers=[("ce_id", b"id-%d" % n)])
    data = bytes(batch._build())
    # magic 2: base offset 8 bytes, length 4, leader epoch 4, magic 1, CRC 4, attributes 2
    assert data[16] == 2
    return int(struct.unpack_from(">h", data, 21)[0] & 0x07)


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
async def test_the_relays_batches_carry_the_configured_codec(compression: str) -> None:
    assert await codec_of_a_batch(compression) == CODECS[compression]


def test_a_service_compresses_only_when_told_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MICROCRED_KAFKA_COMPRESSION", raising=False)
    assert ServiceSettings().kafka_compression == "none"
    monkeypatch.setenv("MICROCRED_KAFKA_COMPRESSION", "zstd")
    assert ServiceSettings().kafka_compression == "zstd"


def test_a_codec_we_do_not_ship_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROCRED_KAFKA_COMPRESSION", "snappy")
    with pytest.raises(ValidationError):
        ServiceSettings()


async def test_the_runtime_builds_its_relays_producer_with_the_services_codec(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from microcred_shared import runtime

    monkeypatch.setenv("MICROCRED_KAFKA_COMPRESSION", "zstd")
    built: list[str] = []

    class Started:
        async def start(self) -> None:
            pass

    def fake(bootstrap: str, client_id: str, *, compression: str = "none",
             **options: object) -> Started:
        built.append(compression)
        return Started()

    monkeypatch.setattr(runtime, "make_producer", fake)
    await runtime.ServiceRuntime(ServiceSettings(), [])._new_producer()
    assert built == ["zstd"]
