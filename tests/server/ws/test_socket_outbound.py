"""SocketOutbound: frames straight into the socket while it keeps up, queued in order when not."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.events import RoomEvent
from server.ws_wire import DIRECT_WRITE_LIMIT, SocketOutbound, text_frame


class Transport:
    """The part of an asyncio transport SocketOutbound uses; `backlog` fakes a full socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.backlog = 0

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.backlog


def outbound(transport: Transport) -> SocketOutbound:
    fake: Any = transport
    return SocketOutbound(fake, soft_limit=1024, hard_limit=4096)


def events(*seqs: int) -> list[RoomEvent]:
    return [RoomEvent.of({"type": "message", "room": "r", "seq": seq}) for seq in seqs]


def frames(data: bytes) -> list[bytes]:
    """Split unmasked text frames (payloads under 126 bytes) back into their payloads."""
    payloads = []
    while data:
        assert data[0] == 0x81 and data[1] < 126
        size = data[1]
        payloads.append(data[2 : 2 + size])
        data = data[2 + size :]
    return payloads


def test_a_batch_is_one_write_of_its_frames_in_order():
    transport = Transport()
    batch = events(1, 2, 3)
    assert outbound(transport).put_events(batch)
    assert len(transport.writes) == 1
    assert frames(transport.writes[0]) == [event.frame for event in batch]


def test_members_given_the_same_batch_share_its_framed_bytes():
    first, second = Transport(), Transport()
    batch = events(4, 5)
    outbound(first).put_events(batch)
    outbound(second).put_events(batch)
    assert first.writes[0] is second.writes[0]  # framed once for everyone
    other = events(4, 5)
    third = Transport()
    outbound(third).put_events(other)
    assert third.writes[0] == first.writes[0] and third.writes[0] is not first.writes[0]


async def test_a_backed_up_socket_queues_the_batch_frame_by_frame_behind_earlier_frames():
    transport = Transport()
    queue = outbound(transport)
    transport.backlog = DIRECT_WRITE_LIMIT
    assert queue.put(b'{"type":"ack"}', "ack")
    transport.backlog = 0  # drained, but the queue is not empty: order comes first
    assert queue.put_events(events(1, 2))
    assert transport.writes == []
    taken = await asyncio.wait_for(queue.take(), 1)
    assert taken == [b'{"type":"ack"}', *[event.frame for event in events(1, 2)]]
    assert queue.put_events(events(3))  # empty again: straight into the socket
    assert frames(transport.writes[0]) == [text_frame(e.frame)[2:] for e in events(3)]
