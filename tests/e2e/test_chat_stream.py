"""End to end: websocket client → daphne → Channels → gateway → the Ollama double over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect as ws_connect

from chat.models import Message
from tests.conftest import database_url, session_cookie, start_daphne, stop_daphne

pytestmark = pytest.mark.e2e


class Client:
    """The page's side of the protocol in docs/websocket.md, over a real socket."""

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

    def text(self, reply_id: int, start: str = "", *, gaps_ok: bool = False) -> str:
        """Rebuild the reply as the page does: append what is new, never twice.

        With `gaps_ok`, a frame beyond what is held is dropped, as the page drops it while
        it waits for the snapshot it asked for (live frames may overtake a snapshot that
        another worker sends).
        """
        text = start
        for frame in self.frames:
            if frame.get("reply") == reply_id and "c" in frame:
                if frame["o"] > len(text):
                    assert gaps_ok, "a token was lost"
                    continue
                text += frame["c"][len(text) - frame["o"] :]
        return text


async def open_client(server, user, *, origin: str | None = None) -> Client:
    cookie = await database_sync_to_async(session_cookie)(user)
    socket = await ws_connect(
        server.ws_url + "/ws/chat/",
        origin=origin or server.origin,
        additional_headers={"Cookie": f"sessionid={cookie}"},
    )
    return Client(socket)


async def wait_for_reply(reply_id: int, status: str, timeout: float = 10.0) -> Message:
    """Poll the database until the reply reaches `status` (another process writes it)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await Message.objects.aget(pk=reply_id)
        if reply.status == status or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.05)


async def test_it_streams_and_persists_a_reply_through_daphne(server, user):
    server.double.configure(reply_tokens=300)
    client = await open_client(server, user)
    await client.send(type="send", conversation=None, content="Tell me a story", model="llama3.2", ref="a")
    turn = await client.until("turn")
    done = await client.until("done", reply=turn["reply"]["id"])
    assert done["status"] == "complete" and done["eval_count"] == 300
    reply = await Message.objects.aget(pk=turn["reply"]["id"])
    assert reply.content == client.text(reply.id) and reply.eval_count == 300 and reply.total_duration
    deltas = [frame for frame in client.frames if frame["type"] == "delta"]
    assert sum(len(frame["c"]) for frame in deltas) == len(reply.content)  # nothing sent twice
    await client.socket.close()


async def test_it_stops_within_a_second_and_closes_the_upstream_request(server, user):
    server.double.configure(tokens_per_second=30, reply_tokens=1000)
    client = await open_client(server, user)
    await client.send(type="send", conversation=None, content="Count to a thousand", model="llama3.2")
    turn = await client.until("turn")
    reply_id = turn["reply"]["id"]
    await client.until("delta", reply=reply_id)
    started = time.monotonic()
    await client.send(type="stop", reply=reply_id)
    done = await client.until("done", reply=reply_id, timeout=1.0)
    closed = await server.double.await_close("/api/chat", timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert done["status"] == "stopped" and closed["closed_early"]
    reply = await wait_for_reply(reply_id, "stopped")
    assert reply.status == "stopped" and reply.content == client.text(reply_id)
    await client.socket.close()


async def test_it_keeps_generating_after_the_tab_closes_and_resumes_on_reload(server, user):
    server.double.configure(tokens_per_second=150, reply_tokens=150)
    first = await open_client(server, user)
    await first.send(type="send", conversation=None, content="Go on", model="llama3.2")
    turn = await first.until("turn")
    reply_id = turn["reply"]["id"]
    await first.until("delta", reply=reply_id)
    await first.until("delta", reply=reply_id)
    have = first.text(reply_id)
    await first.socket.close()  # the tab is reloaded

    second = await open_client(server, user)
    await second.send(
        type="subscribe", conversation=turn["conversation"], replies={str(reply_id): [len(have), 0]}
    )
    snapshot = await second.until("snapshot", reply=reply_id)
    assert snapshot["o"] == len(have)
    await second.until("done", reply=reply_id)
    reply = await wait_for_reply(reply_id, "complete")
    assert second.text(reply_id, start=have) == reply.content
    assert reply.eval_count == 150
    await second.socket.close()


async def test_it_finishes_a_reply_nobody_watches(server, user):
    server.double.configure(tokens_per_second=400, reply_tokens=80)
    client = await open_client(server, user)
    await client.send(type="send", conversation=None, content="Hello", model="llama3.2")
    turn = await client.until("turn")
    await client.socket.close()
    reply = await wait_for_reply(turn["reply"]["id"], "complete")
    assert reply.status == "complete" and reply.eval_count == 80


async def test_it_isolates_two_users(server, user, other_user):
    alice, mallory = await open_client(server, user), await open_client(server, other_user)
    await alice.send(type="send", conversation=None, content="my secret plan", model="llama3.2")
    turn = await alice.until("turn")
    await mallory.send(
        type="subscribe", conversation=turn["conversation"], replies={str(turn["reply"]["id"]): [0, 0]}
    )
    error = await mallory.until("error")
    assert error["code"] == "not_found"
    await alice.until("done", reply=turn["reply"]["id"])
    with pytest.raises(TimeoutError):
        await mallory.until("delta", timeout=0.3)
    assert all("secret" not in json.dumps(frame) for frame in mallory.frames)
    await alice.socket.close()
    await mallory.socket.close()


async def test_it_refuses_a_socket_from_a_foreign_origin(server, user):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        await open_client(server, user, origin="http://evil.example")


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"fail_status": 404}, "model_not_found"),
        ({"error_after": 5}, "stream"),
        ({"fail_status": 503}, "busy"),
    ],
)
async def test_it_shows_faults_in_the_reply_and_keeps_serving(server, user, fault, kind):
    server.double.configure(**fault)
    client = await open_client(server, user)
    await client.send(type="send", conversation=None, content="hello?", model="llama3.2")
    turn = await client.until("turn")
    done = await client.until("done", reply=turn["reply"]["id"])
    assert done["status"] == "error" and done["error_kind"] == kind
    server.double.configure(fail_status=None, error_after=None)
    await client.send(type="retry", reply=turn["reply"]["id"])
    again = await client.until("turn", kind="regenerate")
    assert (await client.until("done", reply=again["reply"]["id"]))["status"] == "complete"
    await client.socket.close()


@pytest.fixture
def own_server(transactional_db, double, tmp_path):
    """Start a daphne of this test's own, with settings given by the test."""
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


async def test_it_reports_a_stalled_stream_after_the_timeout(own_server, user):
    server = own_server(OLLAMA_TIMEOUT="1")
    server.double.configure(stall_after=3)
    client = await open_client(server, user)
    await client.send(type="send", conversation=None, content="hello?", model="llama3.2")
    turn = await client.until("turn")
    done = await client.until("done", reply=turn["reply"]["id"], timeout=5)
    assert done["error_kind"] == "timeout"
    reply = await Message.objects.aget(pk=turn["reply"]["id"])
    assert reply.status == "error" and reply.content
    await client.socket.close()


async def test_it_keeps_a_reply_as_interrupted_when_the_server_dies(own_server, user):
    settings = {"STREAM_CHECKPOINT_INTERVAL": "0.1", "STREAM_STALE_AFTER": "0.5"}
    server = own_server(**settings)
    server.double.configure(tokens_per_second=40, reply_tokens=2000)
    client = await open_client(server, user)
    await client.send(type="send", conversation=None, content="A long answer please", model="llama3.2")
    turn = await client.until("turn")
    reply_id = turn["reply"]["id"]
    deadline = time.monotonic() + 5
    while not (await Message.objects.aget(pk=reply_id)).content and time.monotonic() < deadline:
        await client.until("delta", reply=reply_id)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    # A reply counts as left behind once unsaved for STREAM_STALE_AFTER (a second worker's
    # live streams must not be touched): a restart quicker than that would rightly leave it.
    await asyncio.sleep(float(settings["STREAM_STALE_AFTER"]))
    restarted = own_server(**settings)
    reply = await Message.objects.aget(pk=reply_id)
    assert reply.status == "interrupted" and reply.content
    assert restarted.process.poll() is None
