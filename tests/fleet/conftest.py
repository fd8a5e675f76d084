"""A small fleet: the session's double ("a") plus one or two more doubles ("b", "c")."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from tests.conftest import free_port, session_cookie
from tests.ollama_double import OllamaDouble
from webui import fleet


@pytest.fixture(autouse=True)
def _fresh_fleet(settings):
    """Forget servers, health and model lists between tests (they are cached per process).

    A healthy double must not look dead on a busy test machine: health checks get 5 s here,
    except in the tests that measure how little a dead server costs (they set 1.5 s).
    """
    settings.OLLAMA_HEALTH_INTERVAL = 5.0
    settings.OLLAMA_HEALTH_TIMEOUT = 5.0
    fleet.forget()
    channel_layers.backends.clear()
    yield
    fleet.forget()
    channel_layers.backends.clear()


@pytest.fixture
def second_double() -> Iterator[OllamaDouble]:
    double = OllamaDouble().start()
    yield double
    double.stop()


@pytest.fixture
def third_double() -> Iterator[OllamaDouble]:
    double = OllamaDouble().start()
    yield double
    double.stop()


@pytest.fixture
def pair(double, second_double, settings) -> tuple[OllamaDouble, OllamaDouble]:
    """Make the fleet servers a (the session's double) and b (another double), from OLLAMA_HOSTS."""
    settings.OLLAMA_HOST = double.url
    settings.OLLAMA_HOSTS = [f"a={double.url}", f"b={second_double.url}"]
    return double, second_double


@pytest.fixture
def dead_address() -> str:
    """Return an address where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def stalled_address() -> Iterator[str]:
    """Return an address that accepts connections (the kernel does) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def requests_to(double: OllamaDouble, path: str) -> list[dict]:
    return [entry for entry in double.requests if entry["path"] == path]


def streamed_chats(double: OllamaDouble) -> list[dict]:
    """Return the streamed /api/chat requests (titles are asked for without streaming)."""
    return [entry for entry in requests_to(double, "/api/chat") if (entry["body"] or {}).get("stream", True)]


class ChatSocket:
    """A chat websocket client on the in-process app, reading frames until one matches."""

    def __init__(self, communicator: WebsocketCommunicator):
        self.communicator = communicator
        self.frames: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def until(self, frame_type: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        while True:
            frame = json.loads(await self.communicator.receive_from(timeout))
            self.frames.append(frame)
            if frame["type"] == frame_type and all(frame.get(key) == value for key, value in match.items()):
                return frame

    async def chat(self, model: str, content: str = "Hi") -> dict[str, Any]:
        """Send a message in a new conversation and return the reply's `done` frame."""
        await self.send(type="send", conversation=None, content=content, model=model)
        turn = await self.until("turn")
        return await self.until("done", reply=turn["reply"]["id"])


@pytest.fixture
async def drain_chats():
    """Wait, after the test, for the generations it started."""
    from chat import generation

    yield
    await generation.generation_drain()


@pytest.fixture
def open_chat(transactional_db, user, drain_chats, ws_closer):
    """Return a function opening a chat socket as `user` on the in-process app."""
    from webui.asgi import application

    async def opener() -> ChatSocket:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers = [
            (b"origin", b"http://127.0.0.1"),
            (b"host", b"127.0.0.1"),
            (b"cookie", f"sessionid={cookie}".encode()),
        ]
        communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
        ws_closer.append(communicator)
        connected, _code = await communicator.connect()
        assert connected
        return ChatSocket(communicator)

    return opener


@pytest.fixture
async def drain_operations():
    """Cancel and wait for the pulls a test left running (they belong to its event loop)."""
    from models_admin.services import operations_drain

    yield
    await operations_drain(cancel=True)


def load_model(double: OllamaDouble, model: str = "llama3.2") -> None:
    """Load a model in a double as a chat would (an empty generate)."""
    import httpx

    httpx.post(f"{double.url}/api/generate", json={"model": model, "stream": False}).raise_for_status()


@pytest.fixture
def open_models_socket(transactional_db, drain_operations, ws_closer):
    """Return a function opening the models dashboard socket as a user, in-process."""
    from webui.asgi import application

    async def opener(user) -> WebsocketCommunicator:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers = [
            (b"origin", b"http://127.0.0.1"),
            (b"host", b"127.0.0.1"),
            (b"cookie", f"sessionid={cookie}".encode()),
        ]
        communicator = WebsocketCommunicator(application, "/ws/models/", headers=headers)
        ws_closer.append(communicator)
        assert (await communicator.connect())[0]
        return communicator

    return opener
