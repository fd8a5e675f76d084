"""Two daphne workers sharing PostgreSQL and the Redis channel layer."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from django.conf import settings
from django.db import connection

from chat.models import Message
from tests.conftest import database_url, require, start_daphne, stop_daphne
from tests.e2e.test_chat_stream import open_client, wait_for_reply

pytestmark = [pytest.mark.engines, pytest.mark.e2e]


@pytest.fixture
def workers(transactional_db, double, tmp_path):
    """Start workers A and B on the shared PostgreSQL test database and Redis."""
    require(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL=postgres://…)")
    require(bool(settings.REDIS_URL), "Redis (REDIS_URL=redis://…)")
    env = {"STREAM_CHECKPOINT_INTERVAL": "0.2", "STREAM_STALE_AFTER": "1"}
    started = [
        start_daphne(database_url(connection.settings_dict), double, tmp_path, **env) for _ in range(2)
    ]
    yield started
    for server in started:
        if server.process.poll() is None:
            stop_daphne(server)


async def test_it_streams_a_reply_from_worker_a_to_a_page_on_worker_b(workers, user):
    a, b = workers
    a.double.configure(tokens_per_second=100, reply_tokens=200)
    on_a = await open_client(a, user)
    await on_a.send(type="send", conversation=None, content="Hello", model="llama3.2")
    turn = await on_a.until("turn")
    reply_id = turn["reply"]["id"]
    await on_a.until("delta", reply=reply_id)
    have = on_a.text(reply_id)
    await on_a.socket.close()  # the page reloads, and lands on the other worker

    on_b = await open_client(b, user)
    await on_b.send(
        type="subscribe", conversation=turn["conversation"], replies={str(reply_id): [len(have), 0]}
    )
    snapshot = await on_b.until("snapshot", reply=reply_id)
    assert snapshot["o"] == len(have)
    await on_b.until("done", reply=reply_id)
    reply = await wait_for_reply(reply_id, "complete")
    assert on_b.text(reply_id, start=have, gaps_ok=True) == reply.content
    chat_requests = [entry for entry in a.double.requests if entry["path"] == "/api/chat"]
    assert len([entry for entry in chat_requests if entry["body"].get("stream", True)]) == 1  # one generation
    await on_b.socket.close()


async def test_it_streams_every_token_to_a_second_tab_on_the_other_worker(workers, user):
    """A tab on B, open on the conversation before the reply starts on A, misses nothing."""
    a, b = workers
    on_a = await open_client(a, user)
    await on_a.send(type="send", conversation=None, content="First", model="llama3.2")
    first = await on_a.until("turn")
    await on_a.until("done", reply=first["reply"]["id"])
    conversation = first["conversation"]
    on_b = await open_client(b, user)
    await on_b.send(type="subscribe", conversation=conversation, replies={})
    await on_b.until("subscribed")

    a.double.configure(tokens_per_second=200, reply_tokens=300)
    await on_a.send(type="send", conversation=conversation, content="Second", model="llama3.2")
    turn = await on_b.until("turn")  # B learns of the turn started on A
    reply_id = turn["reply"]["id"]
    await on_b.until("done", reply=reply_id)
    reply = await wait_for_reply(reply_id, "complete")
    assert on_b.text(reply_id) == reply.content  # every delta, in order, none twice, no gap
    deltas = [
        frame["seq"] for frame in on_b.frames if frame["type"] == "delta" and frame["reply"] == reply_id
    ]
    assert len(deltas) > 5 and deltas == sorted(set(deltas))
    await on_a.until("done", reply=reply_id)  # the sending tab too (and its frames are read: a
    # client with unread frames stops reading, and its close would wait for the timeout)
    assert on_a.text(reply_id) == reply.content
    await on_a.socket.close()
    await on_b.socket.close()


async def test_it_stops_on_worker_a_a_reply_stopped_through_worker_b(workers, user):
    a, b = workers
    a.double.configure(tokens_per_second=30, reply_tokens=1000)
    on_a = await open_client(a, user)
    await on_a.send(type="send", conversation=None, content="Count", model="llama3.2")
    turn = await on_a.until("turn")
    reply_id = turn["reply"]["id"]
    await on_a.until("delta", reply=reply_id)
    on_b = await open_client(b, user)
    await on_b.send(type="subscribe", conversation=turn["conversation"], replies={})
    await on_b.until("subscribed")
    started = time.monotonic()
    await on_b.send(type="stop", reply=reply_id)
    done = await on_b.until("done", reply=reply_id, timeout=1.0)
    assert done["status"] == "stopped" and time.monotonic() - started < 1.0
    assert (await a.double.await_close("/api/chat", timeout=1.0))["closed_early"]
    await on_a.socket.close()
    await on_b.socket.close()


async def test_it_marks_a_reply_interrupted_when_its_worker_dies(workers, user):
    a, b = workers
    a.double.configure(tokens_per_second=40, reply_tokens=2000)
    on_a = await open_client(a, user)
    await on_a.send(type="send", conversation=None, content="A long answer", model="llama3.2")
    turn = await on_a.until("turn")
    reply_id = turn["reply"]["id"]
    deadline = time.monotonic() + 5
    while not (await Message.objects.aget(pk=reply_id)).content and time.monotonic() < deadline:
        await on_a.until("delta", reply=reply_id)
    os.kill(a.process.pid, signal.SIGKILL)
    a.process.wait()
    on_b = await open_client(b, user)
    deadline = time.monotonic() + 5
    frame: dict = {}
    while frame.get("status") != "interrupted" and time.monotonic() < deadline:
        # Nobody answers for the dead worker until its heartbeat is older than
        # STREAM_STALE_AFTER; then B reports the reply interrupted, with its text.
        on_b.frames.clear()
        await on_b.send(type="subscribe", conversation=turn["conversation"], replies={str(reply_id): [0, 0]})
        await on_b.until("subscribed")
        snapshots = [f for f in on_b.frames if f["type"] == "snapshot" and f["reply"] == reply_id]
        frame = snapshots[-1] if snapshots else {}
        if not frame:
            await asyncio.sleep(0.1)  # staleness is a matter of time passing
    assert frame["status"] == "interrupted" and frame["c"]
    reply = await Message.objects.aget(pk=reply_id)
    assert reply.status == "interrupted" and reply.content.startswith(frame["c"][:10])
    await on_b.socket.close()
