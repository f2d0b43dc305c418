"""Stopping the writer absorbs the writer's cancellation, never the connection's own."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiohttp import WSMsgType

from server.ws import Connection, cancel_and_wait
from server.ws_wire import Heartbeat


class SlowToStop(Connection):
    """A connection whose writer, once cancelled, takes until `release` to clean up."""

    def __init__(self) -> None:
        closed = SimpleNamespace(type=WSMsgType.CLOSED)
        self.writing = asyncio.Event()

        async def receive() -> SimpleNamespace:
            await self.writing.wait()
            return closed  # the peer has gone: `serve` ends and stops the writer

        async def close_session(session: Any) -> None:
            pass

        ws = SimpleNamespace(closed=False, receive=receive)
        hub = SimpleNamespace(close_session=close_session)
        super().__init__(ws, hub, bucket=None, heartbeat=Heartbeat(25.0))  # type: ignore[arg-type]
        self.stopping = asyncio.Event()
        self.release = asyncio.Event()
        self.ended = asyncio.Event()

    async def write(self, session: Any) -> None:
        self.writing.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.stopping.set()
            await self.release.wait()
            raise
        finally:
            self.ended.set()


class Backlogged:
    """A session whose outbound queue has frames waiting: `serve` starts the writer."""

    name = "session:test"

    def __init__(self) -> None:
        self.outbound = self

    def __len__(self) -> int:
        return 1


async def test_cancelling_the_connection_while_it_awaits_the_writer_propagates() -> None:
    connection = SlowToStop()
    serving = asyncio.create_task(connection.serve(Backlogged()))  # type: ignore[arg-type]
    await asyncio.wait_for(connection.stopping.wait(), 5)  # serve now awaits the writer
    serving.cancel()
    done, _ = await asyncio.wait({serving}, timeout=5)
    connection.release.set()
    await asyncio.wait_for(connection.ended.wait(), 5)
    assert done, "serve ignored its cancellation"
    assert serving.cancelled(), "serve swallowed its own cancellation and went on"


async def test_the_tasks_own_cancellation_is_absorbed() -> None:
    task = asyncio.create_task(asyncio.Event().wait())
    await asyncio.sleep(0)
    await cancel_and_wait(task)  # does not raise
    assert task.cancelled()
