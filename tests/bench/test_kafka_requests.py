"""The e2e benchmark's Kafka request count (`run.py --count-requests`,
bench/e2e/kafka_requests/sitecustomize.py): what a produce and a fetch carried must be read
from the real record batches, and a window's figures must be the totals' difference inside
it, per credential. The broker test sends and reads known records through a real broker
(the devstack's) with the counter in this process."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatchBuilder

SITE = Path(__file__).parents[2] / "bench" / "e2e" / "kafka_requests" / "sitecustomize.py"


def _counter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_kafka_requests_test", SITE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # installs nothing without BENCH_KAFKA_REQUESTS_DIR
    return module


def _batch(records: int, size: int = 100) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    for i in range(records):
        builder.append(i, timestamp=None, key=b"k", value=b"v" * size,
                       headers=[("ce_id", b"x")])
    return bytes(builder.build())


def test_records_and_batches_are_read_from_the_bytes_a_partition_carries() -> None:
    counter = _counter()
    assert counter.batches(_batch(3)) == (1, 3)
    assert counter.batches(_batch(3) + _batch(5, 4000) + _batch(1)) == (3, 9)
    assert counter.batches(b"") == (0, 0)
    assert counter.batches(None) == (0, 0)


def _snapshot(path: Path, t: float, argv: str, counts: dict[str, dict[str, int]]) -> None:
    with path.open("a") as f:
        f.write(json.dumps({"t": t, "pid": 1, "argv": argv, "counts": counts}) + "\n")


def test_a_window_counts_what_was_sent_inside_it_per_credential(bench_e2e, tmp_path, capsys,
                                                               monkeypatch) -> None:
    run = bench_e2e("run")
    # The totals are already written. `run.time` is the time module itself: patched for
    # this test only (an assignment would make every later time.sleep of the session,
    # the devstack's waits included, return at once).
    monkeypatch.setattr(run.time, "sleep", lambda _s: None)
    service = tmp_path / "10.jsonl"
    _snapshot(service, 100.0, "-m microcred_registry",
              {"microcred-registry|Fetch": {"n": 5, "partitions": 40, "answers": 5},
               "microcred-registry|Heartbeat": {"n": 3}})
    _snapshot(service, 110.0, "-m microcred_registry",
              {"microcred-registry|Fetch": {"n": 25, "partitions": 200, "answers": 25,
                                            "filled": 20, "records": 1000, "bytes": 400_000,
                                            "empty": 5},
               "microcred-registry|Heartbeat": {"n": 13},
               "microcred-registry-relay|Produce": {"n": 10, "partitions": 20,
                                                    "records": 1000, "bytes": 100_000}})
    _snapshot(service, 200.0, "-m microcred_registry",  # after the window: not counted
              {"microcred-registry|Fetch": {"n": 999, "partitions": 9999, "answers": 999},
               "microcred-registry|Heartbeat": {"n": 999}})
    relay = tmp_path / "11.jsonl"
    _snapshot(relay, 109.9, "-c --multiprocessing-fork",
              {"aiokafka-producer-1|Produce": {"n": 4, "partitions": 8, "records": 40,
                                               "bytes": 4000}})
    got = run.report_requests(tmp_path, {"window": [100.5, 109.6]}, 1000, "credential")
    assert got["per_api"] == {"Fetch": 0.02, "Produce": 0.014, "Heartbeat": 0.01}
    clients = {(c["client"], c["api"]): c for c in got["clients"]}
    assert clients[("microcred-registry", "Fetch")]["records"] == 1000
    assert clients[("relay producer", "Produce")]["n"] == 4
    out = capsys.readouterr().out
    assert "Kafka requests per credential: 0.044" in out
    # 20 fetches inside the window, every answer with records: 50 records, 20 KB each
    assert "1.00 with records; 50.0 records, 20.0 KB per answer; 5 empty" in out


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from microcred_devstack.kafka import KafkaNode, create_topics_sync

    node = KafkaNode(tmp_path_factory.mktemp("kafka")).start()
    try:
        node.wait_ready(120)
        create_topics_sync(node.bootstrap, ["counted"], partitions=2)
        yield node.bootstrap
    finally:
        node.stop()


@pytest.mark.integration
def test_the_counter_sees_every_record_produced_and_fetched(broker, tmp_path, monkeypatch,
                                                           request) -> None:
    from aiokafka import conn

    monkeypatch.setattr(conn.AIOKafkaConnection, "send", conn.AIOKafkaConnection.send)
    counts = _counter().install(str(tmp_path))
    request.addfinalizer(counts.stopped.set)  # its writer thread ends with the test

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all",
                                    enable_idempotence=True, client_id="counted-producer")
        await producer.start()
        try:
            sent = [await producer.send("counted", b"v" * 500, key=str(i).encode())
                    for i in range(10)]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("counted", bootstrap_servers=broker, group_id="counted",
                                    auto_offset_reset="earliest", client_id="counted-consumer")
        await consumer.start()
        try:
            seen = 0
            while seen < 10:
                batch = await consumer.getmany(timeout_ms=10_000)
                assert batch, "the records never came back"
                seen += sum(len(v) for v in batch.values())
        finally:
            await consumer.stop()

    asyncio.run(go())
    produce = counts.by_key["counted-producer|Produce"]
    assert produce["records"] == 10
    assert produce["bytes"] > 10 * 500
    fetch = counts.by_key["counted-consumer|Fetch"]
    assert fetch["records"] == 10
    assert fetch["answers"] <= fetch["n"]
    assert fetch["partitions"] >= 2 * fetch["n"]  # both partitions asked for each time
    assert "counted-consumer|JoinGroup" in counts.by_key


def test_the_sized_baseline_stores_records_the_size_of_the_backbones(bench_e2e) -> None:
    """`--baseline-sizes backbone`: each relay's records take about the bytes of the
    backbone's record at that hop, whatever the result they carry."""
    run = bench_e2e("run")
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"0" * 36), ("ce_type", b"x" * 60),
               ("ce_source", b"y" * 40), ("ce_time", b"2026-12-07T21:00:00Z"),
               ("content-type", b"application/json"), ("bench_seq", b"1234")]
    key = b"learner-0001"
    for stored in run.BACKBONE_HOP_BYTES:
        for result in (b"r" * 600, b"r" * 6000):
            value = run._sized(result, stored, len(key) + 250)
            builder = DefaultRecordBatchBuilder(magic=2, compression_type=0,
                                                is_transactional=0, producer_id=-1,
                                                producer_epoch=-1, base_sequence=-1,
                                                batch_size=1 << 20)
            builder.append(0, timestamp=None, key=key, value=value, headers=headers)
            size = len(builder.build()) - 61  # the batch's own header
            assert abs(size - stored) <= 0.1 * stored, (stored, size)


def test_a_process_cpu_is_split_by_thread_with_its_page_faults(bench_e2e) -> None:
    import os
    import time

    run = bench_e2e("run")
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    split = run.jvm_threads(os.getpid())
    assert split[run.PAGE_FAULTS] > 0
    cpu = sum(v for k, v in split.items() if k not in (run.PAGE_FAULTS, run.MAJOR_FAULTS))
    assert cpu >= 0.2
    assert run.jvm_threads(2**22 + 12345) == {}  # no such process: nothing, no error


def test_a_latency_round_prints_the_broker_by_thread_and_its_requests(bench_e2e, tmp_path,
                                                                     capsys, monkeypatch) -> None:
    run = bench_e2e("run")
    monkeypatch.setattr(run.time, "sleep", lambda _s: None)  # this test only
    _snapshot(tmp_path / "10.jsonl", 100.0, "-m microcred_assessment",
              {"microcred-assessment|Fetch": {"n": 10, "partitions": 80, "answers": 10}})
    _snapshot(tmp_path / "10.jsonl", 111.0, "-m microcred_assessment",
              {"microcred-assessment|Fetch": {"n": 510, "partitions": 4080, "answers": 510,
                                              "filled": 500, "records": 5000,
                                              "bytes": 3_500_000, "empty": 10}})
    usage = {"window": [100.5, 110.5], "threads": {
        "kafka": {"data-plane-kafk": 2.5, "C2 CompilerThre": 0.5,
                  run.PAGE_FAULTS: 1000.0, run.MAJOR_FAULTS: 0.0}}}
    got = run.report_round_kafka(tmp_path, usage, 5000)
    out = capsys.readouterr().out
    assert "kafka by thread, ms per credential: data-plane-kafk 0.500, C2 CompilerThre 0.100" \
        in out
    assert "Kafka requests per credential: 0.100 (Fetch 0.1000)" in out
    assert got is not None and got["per_api"] == {"Fetch": 0.1}
    # without --count-requests: the threads only, nothing counted
    assert run.report_round_kafka(None, usage, 5000) is None
    assert "Kafka requests" not in capsys.readouterr().out
