"""Fixtures of the security tests: sockets in-process and through daphne, own daphnes, drains."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from tests.conftest import PASSWORD, database_url, session_cookie, start_daphne, stop_daphne
from tests.security.routes import CHAT


@dataclass
class Socket:
    """An in-process websocket (WebsocketCommunicator on webui.asgi) with frame helpers."""

    communicator: WebsocketCommunicator
    connected: bool
    close_code: int | None
    cookie: str = ""
    frames: list[dict[str, Any]] = field(default_factory=list, repr=False)

    async def send(self, **frame: Any) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        frame = json.loads(await self.communicator.receive_from(timeout))
        self.frames.append(frame)
        return frame

    async def until(self, frame_type: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.receive(timeout)
                if frame["type"] == frame_type and all(frame.get(k) == v for k, v in match.items()):
                    return frame

    async def closed_with(self, timeout: float = 2.0) -> int | None:
        """Wait for the server to close the socket; return the close code (skips other frames)."""
        async with asyncio.timeout(timeout):
            while True:
                output = await self.communicator.receive_output(timeout)
                if output["type"] == "websocket.close":
                    return output.get("code")

    async def close(self) -> None:
        await self.communicator.disconnect()


class LiveClient:
    """The page's side of the chat protocol over a real websocket to daphne."""

    def __init__(self, socket):
        self.socket = socket
        self.frames: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.socket.send(json.dumps(frame))

    async def until(self, frame_type: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.socket.recv())
                self.frames.append(frame)
                if frame["type"] == frame_type and all(frame.get(k) == v for k, v in match.items()):
                    return frame

    async def until_any(self, frame_types: tuple[str, ...], timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.socket.recv())
                self.frames.append(frame)
                if frame["type"] in frame_types:
                    return frame

    def text(self, reply_id: int) -> str:
        """Rebuild a reply as the page does: append what is new, never twice, never a gap."""
        text = ""
        for frame in self.frames:
            if frame.get("reply") == reply_id and "c" in frame:
                assert frame["o"] <= len(text), "a token was lost: " + repr(
                    [
                        (f.get("seq"), f.get("o"), len(f.get("c", "")))
                        for f in self.frames
                        if f.get("reply") == reply_id
                    ]
                )
                text += frame["c"][len(text) - frame["o"] :]
        return text

    async def close(self) -> None:
        await self.socket.close()


async def live_client(server, cookie: str, path: str = CHAT, **options: Any) -> LiveClient:
    """Open a websocket to a live daphne with a session cookie, from the page's own origin."""
    from websockets.asyncio.client import connect

    socket = await connect(
        server.ws_url + path,
        origin=server.origin,
        additional_headers={"Cookie": f"sessionid={cookie}"},
        **options,
    )
    return LiveClient(socket)


async def chat_turn(server, cookie: str, content: str, *, model: str = "llama3.2") -> dict[str, Any]:
    """Send one message in a new conversation through daphne; return the reply's `done` frame."""
    client = await live_client(server, cookie)
    try:
        await client.send(type="send", conversation=None, content=content, model=model, ref="t")
        turn = await client.until("turn")
        return await client.until("done", reply=turn["reply"]["id"])
    finally:
        await client.close()


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Give each test its own in-memory channel layer (its queues belong to one event loop)."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
async def drain():
    """Wait, after the test, for the generations and operations it started."""
    from chat import generation
    from models_admin.services import operations_drain

    yield
    for reply_id in list(generation._local):  # a failed test may leave long streams behind
        generation.generation_stop(reply_id)
    await generation.generation_drain()
    await operations_drain(cancel=True)


@pytest.fixture
async def _sockets_ended():
    """Collect the test's in-process sockets; end each one's application after the test.

    Refused sockets too: their consumer still waits on the channel layer, and a task left
    for the event loop's teardown to cancel can hang it (seen with the Redis layer).
    """
    sockets: list[Socket] = []
    yield sockets
    for socket in sockets:
        with contextlib.suppress(Exception):
            await socket.communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    futures = [socket.communicator.future for socket in sockets if not socket.communicator.future.done()]
    if futures:
        await asyncio.wait(futures, timeout=5)


@pytest.fixture
def open_socket(transactional_db, ollama, drain, _sockets_ended):
    """Return a function opening a websocket in-process as a user (None: anonymous)."""
    from webui.asgi import application

    sockets = _sockets_ended

    async def open_(
        user,
        path: str = CHAT,
        *,
        origin: str | None = "http://127.0.0.1",
        cookie: str | None = None,
        timeout: float = 5.0,
    ) -> Socket:
        headers = [(b"host", b"127.0.0.1")]
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        if cookie is None and user is not None:
            cookie = await database_sync_to_async(session_cookie)(user)
        if cookie:
            headers.append((b"cookie", f"sessionid={cookie}".encode()))
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect(timeout)
        socket = Socket(communicator, connected, code, cookie or "")
        sockets.append(socket)
        return socket

    yield open_


@pytest.fixture
def own_server(transactional_db, double, tmp_path):
    """Start daphnes of the test's own, with settings given by the test; stop them after."""
    from django.db import connection

    servers = []

    def start(**env: str):
        server = start_daphne(database_url(connection.settings_dict), double, tmp_path, **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            stop_daphne(server)


def live_password(user, password: str = PASSWORD) -> None:
    """Give `user` a password a live daphne can check quickly (its hashers are the real ones).

    The suite's MD5 hasher is unknown to daphne; a PBKDF2 hash with few iterations is known
    and cheap (daphne re-hashes it at full strength on the first successful log-in).
    """
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(password, hasher.salt(), iterations=1000)
    user.save(update_fields=["password"])


def assert_clean_log(log: str) -> None:
    """Fail when a server log shows an unhandled exception or an error-level line."""
    problems = [
        line
        for line in log.splitlines()
        if any(
            sign in line
            for sign in ("Traceback", " ERROR ", " CRITICAL ", "database is locked", "over capacity")
        )
    ]
    assert not problems, "the server log shows errors:\n" + log[-4000:]


def assert_no_logged_errors(caplog) -> None:
    """Fail when the test's own process logged an error or an unhandled exception."""
    problems = [
        f"{record.levelname} {record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info
    ]
    assert not problems, problems
