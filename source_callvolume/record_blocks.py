"""Records cross from the reading threads to the writing thread in blocks, and are written a block at a time.

Why: in airbyte-cdk 7.39.1 every record takes one trip through the concurrent pipeline of its own. A worker
thread puts it on the shared queue (a lock and a wake-up of the main thread, which then fights the workers for
the GIL), and the main thread turns it into an AirbyteMessage, passes it up eight generators, counts it for the
next state's `sourceStats`, serialises it through serpyco-rs and writes it through the print buffer's lock.
About 20 µs a row, two thirds of the connector's own CPU on a full refresh. No manifest option or component
reaches that code: it runs after the retriever has handed over the record.

What changes, and only for the `source-callvolume` command (run.py installs it through fast_paths.install):
- A worker puts up to `BLOCK_SIZE` records of its window on the queue as one `RecordBlock`, and always puts
  what it holds before anything else it puts for that window: before the window's state (which
  `close_partition` emits), and before the error that ends the window, so the records read before a failure
  are still delivered, as they are by the CDK.
- The queue's bound counts records, not items: a slow destination holds the workers back once 2,000 records
  wait, as the CDK's bound of 10,000 items does (see RECORDS_WAITING), whatever the size of the blocks.
- The main thread turns a block into one `RecordLines`: the RECORD lines the CDK would have written for those
  records, byte for byte (`emitted_at` aside). It does for the block what `on_record` does for each record:
  the RUNNING status before the stream's first record, the stream's record counter, then the messages the
  main thread had to set aside while the queue was full.
- `handle_record_counts` counts a block as its number of records, so every state's `sourceStats.recordCount`
  is what the CDK would report; `airbyte_message_to_string` writes a block as its lines joined by newlines.

A record the fast serialisation cannot reproduce exactly goes through the CDK's own functions: one with a
file reference, a `None` value (the CDK leaves those out of `data`), or a value orjson refuses (nesting 255
levels deep). The CDK's memory monitor counts messages, and a block is one: the entrypoint's monitor checks
every `5000 // BLOCK_SIZE` messages instead of every 5,000, as often per record as before.

A block is several lines in one string, which only a caller that writes what `entrypoint.run` yields to a
stream (run.py) handles; in-process readers such as `airbyte_cdk.test.entrypoint_wrapper` parse one message
per string, so this module is never installed for them.
"""

from __future__ import annotations

import time
from functools import partial
from queue import Queue
from typing import Any, Callable, Iterable, Iterator, List

import orjson

from airbyte_cdk import entrypoint as cdk_entrypoint
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import AirbyteMessage, AirbyteStreamStatus
from airbyte_cdk.sources.concurrent_source.concurrent_read_processor import ConcurrentReadProcessor
from airbyte_cdk.sources.concurrent_source.concurrent_source import ConcurrentSource
from airbyte_cdk.sources.concurrent_source.stream_thread_exception import StreamThreadException
from airbyte_cdk.sources.connector_state_manager import HashableStreamDescriptor
from airbyte_cdk.sources.declarative import concurrent_declarative_source
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor
from airbyte_cdk.sources.streams.concurrent.partition_reader import PartitionReader
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.streams.concurrent.partitions.types import PartitionCompleteSentinel, QueueItem
from airbyte_cdk.sources.types import Record
from airbyte_cdk.sources.utils.record_helper import stream_data_to_airbyte_message
from airbyte_cdk.utils.memory_monitor import _DEFAULT_CHECK_INTERVAL, MemoryMonitor
from airbyte_cdk.utils.stream_status_utils import as_airbyte_message as stream_status_as_airbyte_message

# Small enough that a window's last records wait at most one page request before they are written; large
# enough that the queue's lock and wake-up cost well under 0.1 µs a record.
BLOCK_SIZE = 100
# Records waiting for the main thread. The CDK allows 10,000: at some 6 KiB a parsed record, 60 MiB and most of
# the connector's peak memory whenever the main thread falls behind. Written in blocks, 2,000 keep the
# workers as busy (measured: the same wall time) with a peak that does not depend on the destination's pace.
RECORDS_WAITING = 2_000

_cdk_message_to_string = AirbyteEntrypoint.airbyte_message_to_string


class RecordBlock(List[Record]):
    """Records of one window, in the order read, crossing the queue as one item."""


class RecordLines:
    """The RECORD lines of consecutive records of one stream: what the main thread yields for a block."""

    __slots__ = ("descriptor", "lines")

    def __init__(self, stream_name: str, lines: List[bytes]) -> None:
        # The key under which handle_record_counts counts the records of on_record's messages: no namespace.
        self.descriptor = HashableStreamDescriptor(name=stream_name, namespace=None)
        self.lines = lines


class RecordCountingQueue(Queue):  # type: ignore[type-arg]
    """A queue whose `maxsize` bounds the records it holds rather than its items (a block is one item)."""

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self._records = 0

    def _qsize(self) -> int:
        return self._records

    def _put(self, item: QueueItem) -> None:
        super()._put(item)
        self._records += _weight(item)

    def _get(self) -> QueueItem:
        item = super()._get()
        self._records -= _weight(item)
        return item


def shared_queue(maxsize: int = 0) -> RecordCountingQueue:
    """What ConcurrentDeclarativeSource builds where it calls `Queue(maxsize=10_000)`."""
    return RecordCountingQueue(maxsize=RECORDS_WAITING)


def _weight(item: Any) -> int:
    return len(item) if type(item) is RecordBlock else 1


def record_line(stream_name: str, record: Record) -> bytes:
    """The line the CDK writes for this record (on_record, then airbyte_message_to_string), as bytes."""
    data = record.data
    if record.file_reference is None and type(data) is dict and None not in data.values():
        message = {"type": "RECORD", "record": {"stream": stream_name, "data": data, "emitted_at": time.time_ns() // 1_000_000}}
        try:
            return orjson.dumps(message)
        except TypeError:  # orjson.JSONEncodeError: the CDK falls back to json, and logs it, below
            pass
    airbyte_message = stream_data_to_airbyte_message(stream_name, data, file_reference=record.file_reference)
    return _cdk_message_to_string(airbyte_message).encode()


def process_partition_in_blocks(self: PartitionReader, partition: Partition, cursor: Cursor) -> None:
    """PartitionReader.process_partition of airbyte-cdk 7.39.1, putting records on the queue in blocks."""
    block = RecordBlock()
    try:
        if self._partition_logger:
            self._partition_logger.log(partition)
        for record in partition.read():
            block.append(record)
            cursor.observe(record)
            if len(block) == BLOCK_SIZE:
                full, block = block, RecordBlock()
                self._queue.put(full)
        if block:
            full, block = block, RecordBlock()
            self._queue.put(full)
        cursor.close_partition(partition)
        self._queue.put(PartitionCompleteSentinel(partition, self._IS_SUCCESSFUL))
    except Exception as error:
        if block:
            self._queue.put(block)
        self._queue.put(StreamThreadException(error, partition.stream_name()))
        self._queue.put(PartitionCompleteSentinel(partition, not self._IS_SUCCESSFUL))


def on_record_block(processor: ConcurrentReadProcessor, block: RecordBlock) -> Iterator[Any]:
    """ConcurrentReadProcessor.on_record of airbyte-cdk 7.39.1, for a block of records of one stream."""
    stream = processor._stream_name_to_instance[block[0].stream_name]
    if processor._record_counter[stream.name] == 0:
        processor._logger.info(f"Marking stream {stream.name} as RUNNING")
        yield stream_status_as_airbyte_message(stream.as_airbyte_stream(), AirbyteStreamStatus.RUNNING)
    processor._record_counter[stream.name] += len(block)
    yield RecordLines(stream.name, [record_line(stream.name, record) for record in block])
    yield from processor._message_repository.consume_queue()


def _handling_blocks(handle_item: Callable[..., Iterable[AirbyteMessage]]) -> Callable[..., Iterable[Any]]:
    def handle_item_or_block(self: ConcurrentSource, queue_item: QueueItem, processor: ConcurrentReadProcessor) -> Iterable[Any]:
        if type(queue_item) is RecordBlock:
            return on_record_block(processor, queue_item)
        return handle_item(self, queue_item, processor)

    return handle_item_or_block


def _counting_blocks(handle_record_counts: Callable[..., AirbyteMessage]) -> Callable[..., Any]:
    def handle_record_counts_of_blocks(message: Any, stream_message_count: Any) -> Any:
        if type(message) is RecordLines:
            stream_message_count[message.descriptor] += float(len(message.lines))
            return message
        return handle_record_counts(message, stream_message_count)

    return handle_record_counts_of_blocks


def _writing_blocks(message_to_string: Callable[[AirbyteMessage], str]) -> Callable[[Any], str]:
    def message_or_block_to_string(message: Any) -> str:
        if type(message) is RecordLines:
            return b"\n".join(message.lines).decode()
        return message_to_string(message)

    return message_or_block_to_string


def install() -> None:
    concurrent_declarative_source.Queue = shared_queue  # type: ignore[attr-defined]
    cdk_entrypoint.MemoryMonitor = partial(MemoryMonitor, check_interval=max(1, _DEFAULT_CHECK_INTERVAL // BLOCK_SIZE))  # type: ignore[attr-defined]
    PartitionReader.process_partition = process_partition_in_blocks  # type: ignore[method-assign]
    ConcurrentSource._handle_item = _handling_blocks(ConcurrentSource._handle_item)  # type: ignore[method-assign]
    AirbyteEntrypoint.handle_record_counts = staticmethod(_counting_blocks(AirbyteEntrypoint.handle_record_counts))  # type: ignore[method-assign]
    AirbyteEntrypoint.airbyte_message_to_string = staticmethod(_writing_blocks(_cdk_message_to_string))  # type: ignore[method-assign]
