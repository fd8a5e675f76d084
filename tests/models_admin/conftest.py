"""Fixtures of the models dashboard tests: an admin's dashboard socket, in-process or live."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from tests.conftest import session_cookie


class ModelsSocket:
    """A client of /ws/models/ with helpers to read frames until one matches."""

    def __init__(self, communicator: WebsocketCommunicator, connected: bool, close_code: int | None):
        self.communicator = communicator
        self.connected = connected
        self.close_code = close_code
        self.frames: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        frame = json.loads(await self.communicator.receive_from(timeout))
        self.frames.append(frame)
        return frame

    async def until(self, frame_type: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """Read frames until one of `frame_type` whose fields match `match` arrives."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.receive(timeout)
                if frame["type"] == frame_type and all(
                    frame.get(key) == value for key, value in match.items()
                ):
                    return frame

    async def until_operation(self, status: str, timeout: float = 10.0) -> dict[str, Any]:
        """Read frames until an operation frame with `status` arrives; return the operation."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.until("operation", timeout)
                if frame["operation"]["status"] == status:
                    return frame["operation"]

    def operations(self, operation_id: int) -> list[dict[str, Any]]:
        return [
            frame["operation"]
            for frame in self.frames
            if frame["type"] in ("operation", "started") and frame["operation"]["id"] == operation_id
        ]

    async def close(self) -> None:
        await self.communicator.disconnect()


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Give each test its own in-memory channel layer (queues belong to one event loop)."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
async def drain():
    """Cancel and wait for operation tasks a test left running (they belong to its event loop)."""
    from models_admin.services import operations_drain

    yield
    await operations_drain(cancel=True)


@pytest.fixture
def connect(transactional_db, ollama, drain, ws_closer):
    """Return a function opening /ws/models/ in-process as `user` (None: anonymous)."""
    from webui.asgi import application

    sockets: list[ModelsSocket] = []

    async def open_socket(user, *, origin: str = "http://127.0.0.1") -> ModelsSocket:
        headers = [(b"origin", origin.encode()), (b"host", b"127.0.0.1")]
        if user is not None:
            cookie = await database_sync_to_async(session_cookie)(user)
            headers.append((b"cookie", f"sessionid={cookie}".encode()))
        communicator = WebsocketCommunicator(application, "/ws/models/", headers=headers)
        ws_closer.append(communicator)
        connected, code = await communicator.connect()
        socket = ModelsSocket(communicator, connected, code)
        sockets.append(socket)
        return socket

    return open_socket
