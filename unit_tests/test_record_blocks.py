"""Pins that records crossing the threads in blocks (record_blocks.py) come out as the CDK's own path writes them.

- every line is the CDK's line for that record, byte for byte but for `emitted_at`, including the records the
  CDK writes in its own way (a `None` value, an integer beyond 64 bits);
- a window's records are all on the queue, in order, before its state and before the error that ends it;
- the queue's bound counts records, so a block does not let 100 times more records wait in memory;
- the main thread does for a block what `on_record` does for each of its records: RUNNING once, the counter;
- a state after blocks counts their records, and a block is written as its lines.

Nothing here installs the blocks: the functions are called directly, next to the CDK's unpatched ones.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from queue import Full
from typing import Any, Iterator, List
from unittest.mock import Mock

import pytest
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import AirbyteLogMessage, AirbyteMessage, AirbyteStream, Level, SyncMode, Type
from airbyte_cdk.sources.concurrent_source.concurrent_read_processor import ConcurrentReadProcessor
from airbyte_cdk.sources.concurrent_source.stream_thread_exception import StreamThreadException
from airbyte_cdk.sources.connector_state_manager import HashableStreamDescriptor
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.streams.concurrent.partition_reader import PartitionReader
from airbyte_cdk.sources.streams.concurrent.partitions.types import PartitionCompleteSentinel
from airbyte_cdk.sources.types import Record
from airbyte_cdk.sources.utils.record_helper import stream_data_to_airbyte_message

from source_callvolume import record_blocks
from source_callvolume.record_blocks import BLOCK_SIZE, RecordBlock, RecordCountingQueue, RecordLines

STREAM = "call_volume"
ROW = {
    "_id": "f793ee0fdc58eb73b0c8c346",
    "intervalEndTimeStamp": "2024-01-01T00:15:00.000Z",
    "queueName": "Billing",
    "offeredContacts": 12,
    "csatScore": 4.5,
}
_EMITTED_AT = re.compile(r',?\s*"emitted_at":\s*\d+')


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _record(number: int = 0, **data: Any) -> Record:
    return Record(data={**ROW, "_id": f"row-{number:05d}", **data}, stream_name=STREAM)


def _cdk_line(record: Record) -> str:
    """What the CDK prints for a record: on_record's message, then airbyte_message_to_string."""
    return AirbyteEntrypoint.airbyte_message_to_string(stream_data_to_airbyte_message(STREAM, record.data))


def _without_emitted_at(line: str) -> str:
    return _EMITTED_AT.sub("", line)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="plain-row"),
        pytest.param({"csatScore": None}, id="null-value-left-out-as-the-cdk-does"),
        pytest.param({"breakdown": {"chat": None, "voice": 3}}, id="nested-null-kept-as-the-cdk-does"),
        pytest.param({"offeredContacts": 2**70}, id="integer-beyond-64-bits-written-by-json-as-the-cdk-does"),
        pytest.param({"queueName": "Facturación ✓ 請求"}, id="non-ascii-text"),
        pytest.param({"csatScore": float("nan")}, id="nan"),
        pytest.param({"deep": _nested(300)}, id="nesting-orjson-refuses-written-by-json-as-the-cdk-does"),
    ],
)
def test_record_line_is_the_line_the_cdk_writes(data: dict) -> None:
    record = _record(**data)

    line = record_blocks.record_line(STREAM, record).decode()

    assert _without_emitted_at(line) == _without_emitted_at(_cdk_line(record))
    assert re.search(r'"emitted_at":\s*\d{13}\b', line)


class _Window:
    """A partition whose read yields `rows` records, then raises `error` if one is given."""

    def __init__(self, rows: int, error: Exception | None = None) -> None:
        self.records = [_record(number) for number in range(rows)]
        self._error = error

    def read(self) -> Iterator[Record]:
        yield from self.records
        if self._error:
            raise self._error

    def stream_name(self) -> str:
        return STREAM


class _Cursor:
    """Observes records and, as ConcurrentCursor does through the message repository, puts the state on the queue."""

    def __init__(self, queue: RecordCountingQueue) -> None:
        self._queue = queue
        self.observed: List[Record] = []

    def observe(self, record: Record) -> None:
        self.observed.append(record)

    def close_partition(self, partition: Any) -> None:
        self._queue.put("state")


def _process(window: _Window) -> tuple[list, _Cursor]:
    queue = RecordCountingQueue(maxsize=10_000)
    cursor = _Cursor(queue)
    record_blocks.process_partition_in_blocks(PartitionReader(queue), window, cursor)
    return list(queue.queue), cursor


def _flattened(items: list) -> list:
    return [record for item in items if type(item) is RecordBlock for record in item]


def test_a_window_crosses_in_blocks_in_order_and_before_its_state() -> None:
    window = _Window(rows=2 * BLOCK_SIZE + 50)

    items, cursor = _process(window)

    assert [len(item) for item in items[:3]] == [BLOCK_SIZE, BLOCK_SIZE, 50]
    assert _flattened(items) == window.records == cursor.observed
    assert items[3] == "state"
    assert isinstance(items[4], PartitionCompleteSentinel) and items[4].is_successful
    assert len(items) == 5


def test_records_read_before_a_failure_are_on_the_queue_before_the_error() -> None:
    # As PartitionReader.process_partition does: records put before the error are delivered; no state follows.
    window = _Window(rows=BLOCK_SIZE + 30, error=ConnectionError("page 3 failed"))

    items, _ = _process(window)

    assert _flattened(items) == window.records
    assert "state" not in items
    error, sentinel = items[-2:]
    assert isinstance(error, StreamThreadException) and isinstance(error.exception, ConnectionError)
    assert isinstance(sentinel, PartitionCompleteSentinel) and not sentinel.is_successful


def test_queue_bound_counts_records_not_blocks() -> None:
    queue = RecordCountingQueue(maxsize=250)
    queue.put(RecordBlock([_record(n) for n in range(BLOCK_SIZE)]))
    queue.put(RecordBlock([_record(n) for n in range(BLOCK_SIZE)]))
    queue.put("state")
    queue.put(RecordBlock([_record(n) for n in range(BLOCK_SIZE)]))  # 201 < 250: room for one more block

    assert queue.qsize() == 301
    with pytest.raises(Full):
        queue.put("one more", block=False)

    queue.get()
    assert queue.qsize() == 201


def _processor(message_repository: InMemoryMessageRepository) -> ConcurrentReadProcessor:
    stream = Mock()
    stream.name = STREAM
    stream.as_airbyte_stream.return_value = AirbyteStream(
        name=STREAM, json_schema={}, supported_sync_modes=[SyncMode.full_refresh]
    )
    return ConcurrentReadProcessor(
        [stream], Mock(), Mock(), logging.getLogger("test"), Mock(), message_repository, Mock()
    )


def _summary(messages: list) -> list:
    """Messages as comparable text: RECORD lines without emitted_at, the rest by type and stream status."""
    summary = []
    for message in messages:
        if type(message) is RecordLines:
            summary += [_without_emitted_at(line.decode()) for line in message.lines]
        elif message.type == Type.RECORD:
            summary.append(_without_emitted_at(AirbyteEntrypoint.airbyte_message_to_string(message)))
        elif message.type == Type.TRACE:
            summary.append(f"status {message.trace.stream_status.status.name}")
        else:
            summary.append(message.type.name)
    return summary


def test_a_block_gives_what_on_record_gives_for_each_of_its_records() -> None:
    records = [_record(number) for number in range(2 * BLOCK_SIZE)]
    cdk_processor = _processor(InMemoryMessageRepository())
    block_processor = _processor(InMemoryMessageRepository())

    cdk_messages = [message for record in records for message in cdk_processor.on_record(record)]
    block_messages = [
        message
        for block in (RecordBlock(records[:BLOCK_SIZE]), RecordBlock(records[BLOCK_SIZE:]))
        for message in record_blocks.on_record_block(block_processor, block)
    ]

    assert _summary(block_messages) == _summary(cdk_messages)
    assert _summary(block_messages)[0] == "status RUNNING"
    assert block_processor._record_counter == cdk_processor._record_counter == {STREAM: 2 * BLOCK_SIZE}


def test_messages_set_aside_while_the_queue_was_full_follow_the_block() -> None:
    repository = InMemoryMessageRepository()
    processor = _processor(repository)
    repository.emit_message(AirbyteMessage(type=Type.LOG, log=AirbyteLogMessage(level=Level.INFO, message="set aside")))

    messages = list(record_blocks.on_record_block(processor, RecordBlock(_record(n) for n in range(3))))

    assert _summary(messages)[1:] == [_without_emitted_at(_cdk_line(_record(n))) for n in range(3)] + ["LOG"]
    assert list(repository.consume_queue()) == []


def test_a_state_after_blocks_counts_their_records_and_a_block_is_written_as_its_lines() -> None:
    handle_record_counts = record_blocks._counting_blocks(AirbyteEntrypoint.handle_record_counts)
    message_to_string = record_blocks._writing_blocks(AirbyteEntrypoint.airbyte_message_to_string)
    lines = [record_blocks.record_line(STREAM, _record(number)) for number in range(3)]
    counts: defaultdict = defaultdict(float)

    handle_record_counts(RecordLines(STREAM, lines), counts)
    handle_record_counts(RecordLines(STREAM, lines[:2]), counts)
    handle_record_counts(stream_data_to_airbyte_message(STREAM, ROW), counts)  # one record through the CDK's path

    assert counts == {HashableStreamDescriptor(name=STREAM, namespace=None): 6.0}
    assert message_to_string(RecordLines(STREAM, lines)).split("\n") == [line.decode() for line in lines]
