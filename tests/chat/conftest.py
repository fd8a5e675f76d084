from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from tests.conftest import session_cookie


class ChatSocket:
    """A websocket client on the in-process ASGI app, with helpers to read frames."""

    def __init__(self, communicator: WebsocketCommunicator):
        self.communicator = communicator
        self.frames: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        frame = json.loads(await self.communicator.receive_from(timeout))
        self.frames.append(frame)
        return frame

    async def until(self, frame_type: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """Read frames until one of `frame_type` (matching `match`) arrives; return it."""
        while True:
            frame = await self.receive(timeout)
            if frame["type"] == frame_type and all(frame.get(key) == value for key, value in match.items()):
                return frame

    def text(self, reply_id: int) -> str:
        """Rebuild a reply's text from the frames as the page does (offsets, no duplicates)."""
        text = ""
        for frame in self.frames:
            if frame.get("reply") != reply_id or "c" not in frame:
                continue
            offset = frame["o"]
            assert offset <= len(text), f"gap: frame at {offset}, have {len(text)}"
            text += frame["c"][len(text) - offset :]
        return text

    async def close(self) -> None:
        await self.communicator.disconnect()


@pytest.fixture
def connect(transactional_db, ollama, ws_closer):
    """Return a function opening an authenticated chat socket for a user."""
    from webui.asgi import application

    sockets: list[ChatSocket] = []

    async def open_socket(user, *, origin: str = "http://127.0.0.1", path: str = "/ws/chat/") -> ChatSocket:
        headers = [(b"origin", origin.encode()), (b"host", b"127.0.0.1")]
        if user is not None:
            cookie = await database_sync_to_async(session_cookie)(user)
            headers.append((b"cookie", f"sessionid={cookie}".encode()))
        communicator = WebsocketCommunicator(application, path, headers=headers)
        ws_closer.append(communicator)
        connected, code = await communicator.connect()
        socket = ChatSocket(communicator)
        socket.connected, socket.close_code = connected, code
        sockets.append(socket)
        return socket

    yield open_socket


@pytest.fixture
async def drain():
    """Wait, after the test, for generations and title tasks it started."""
    from chat import generation

    yield
    await generation.generation_drain()
