"""A poll with a null or non-UTF-8 header value still reaches the batch handler, which is handed
the original records to judge one by one (FastStream's own parser failed the whole poll)."""

from __future__ import annotations

from faststream.kafka.message import KafkaMessage
from faststream.kafka.parser import AioKafkaBatchParser
from hypothesis import given
from hypothesis import strategies as st

from moment_messaging.runtime import _tolerant_batch
from tests.support.poison_records import Headers, header_values, record


@given(st.lists(st.lists(st.tuples(st.text(max_size=8), header_values), max_size=4), min_size=1))
async def test_any_headers_parse_and_the_originals_reach_the_handler(
    batches: list[Headers],
) -> None:
    records = tuple(record(h, b"{}", offset=n) for n, h in enumerate(batches))
    parser = AioKafkaBatchParser(msg_class=KafkaMessage, regex=None)
    message = await _tolerant_batch(records, parser.parse_batch)
    assert message.raw_message is records
    assert len(message.batch_headers) == len(records)
