"""Faults through the Ollama double that tests/chat and tests/e2e do not already cover.

For each: the user sees a readable state, nothing typed is lost, and the server log shows no
unhandled exception. (404, 500, 503, an error line in a 200 stream, a connection dropped
mid-reply, a stall past the timeout and a killed server are in tests/chat/test_consumers.py
and tests/e2e/; they run again here, through daphne, for the log.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from datetime import timedelta

import httpx
import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone

from chat import generation
from chat.models import Message
from models_admin.models import Operation
from tests.conftest import make_user, session_cookie
from tests.ollama_double import OllamaDouble
from tests.security.conftest import assert_clean_log, assert_no_logged_errors, live_client


@database_sync_to_async
def rows(conversation_id: int) -> list[tuple[str, str, str]]:
    return list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("id")
        .values_list("role", "status", "content")
    )


# -- in-process -------------------------------------------------------------------------------
@pytest.fixture
def own_double():
    double = OllamaDouble().start()
    yield double
    double.stop()


async def test_it_recovers_when_ollama_is_unreachable_at_first_and_comes_back(
    open_socket, user, settings, own_double, caplog
):
    from webui.health import health_cache_clear

    settings.OLLAMA_HOST = own_double.url
    own_double.stop()
    health_cache_clear()
    socket = await open_socket(user)
    await socket.send(type="send", conversation=None, content="are you there?", model="llama3.2", ref="1")
    turn = await socket.until("turn")
    done = await socket.until("done", reply=turn["reply"]["id"])
    assert done["status"] == "error" and done["error_kind"] == "unreachable"
    assert done["error"] == f"Ollama is unreachable at {own_double.url}."
    assert (await rows(turn["conversation"]))[0] == ("user", "complete", "are you there?")  # kept

    own_double.start()  # same port: Ollama is back
    health_cache_clear()
    await socket.send(type="retry", reply=turn["reply"]["id"], ref="2")
    again = await socket.until("turn", ref="2")
    assert (await socket.until("done", reply=again["reply"]["id"]))["status"] == "complete"
    assert [row[:2] for row in await rows(turn["conversation"])] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    health = await database_sync_to_async(Client().get)("/healthz")
    assert health.json()["ollama"]["reachable"] is True
    health_cache_clear()
    assert_no_logged_errors(caplog)


async def test_it_streams_extremely_slow_tokens_without_timing_out(
    open_socket, double, user, settings, caplog
):
    settings.OLLAMA_TIMEOUT = 0.6  # each token comes within it, the whole reply does not
    double.configure(tokens_per_second=3, reply_tokens=4, first_token_delay=0.3)
    socket = await open_socket(user)
    await socket.send(type="send", conversation=None, content="slowly", model="llama3.2")
    turn = await socket.until("turn")
    done = await socket.until("done", reply=turn["reply"]["id"], timeout=10)
    assert done["status"] == "complete" and done["eval_count"] == 4
    deltas = [frame for frame in socket.frames if frame["type"] == "delta"]
    assert len(deltas) >= 3  # shown token by token, not all at the end
    reply = await Message.objects.aget(pk=turn["reply"]["id"])
    assert reply.content and reply.status == "complete"
    assert_no_logged_errors(caplog)


@database_sync_to_async
def many_users(count: int) -> list:
    return [make_user(f"load{index}") for index in range(count)]


async def test_it_lets_200_clients_disconnect_at_once_mid_stream(open_socket, double, settings, caplog):
    """Replies outlive their sockets (docs/websocket.md): 200 tabs closing at once stop nothing
    and break nothing; the streams go on, and when they end (here by Stop) every upstream
    request is closed, every reply is saved with its text, and no task is left behind."""
    count = 200
    # Streams that last until stopped, at a pace that keeps 200 of them light for one process;
    # no checkpoints meanwhile (this test is about sockets and tasks, not about saving).
    double.configure(tokens_per_second=2, reply_tokens=600)
    settings.STREAM_CHECKPOINT_INTERVAL = 3600
    users = await many_users(count)
    sockets = await asyncio.gather(*(open_socket(user, timeout=120) for user in users))
    await asyncio.gather(
        *(
            client.send(type="send", conversation=None, content=f"hello {index}", model="llama3.2")
            for index, client in enumerate(sockets)
        )
    )
    turns = await asyncio.gather(*(client.until("turn", timeout=120) for client in sockets))
    await asyncio.gather(*(client.until("delta", timeout=120) for client in sockets))
    replies = [turn["reply"]["id"] for turn in turns]
    assert sorted(generation._local) == sorted(replies)  # all mid-stream

    await asyncio.gather(*(client.close() for client in sockets))

    running = [generation._local[reply] for reply in replies]
    lengths = [run.content_length for run in running]
    async with asyncio.timeout(10):  # still generating with nobody watching
        while not all(run.content_length > length for run, length in zip(running, lengths, strict=True)):
            await asyncio.sleep(0.05)
    for reply in replies:
        assert generation.generation_stop(reply)
    await generation.generation_drain(timeout=30)

    saved = await database_sync_to_async(list)(
        Message.objects.filter(pk__in=replies).values_list("status", "content")
    )
    bad = [(status, content[:40]) for status, content in saved if not (status == "stopped" and content)]
    assert len(saved) == count and not bad, bad[:5]
    typed = await database_sync_to_async(set)(
        Message.objects.filter(role="user").values_list("content", flat=True)
    )
    assert typed == {f"hello {index}" for index in range(count)}  # nothing typed was lost
    streams = [
        entry
        for entry in double.requests
        if entry["path"] == "/api/chat" and entry["body"].get("stream", True)
    ]
    assert len(streams) == count
    async with asyncio.timeout(5):  # the double sees each connection close
        while double.in_flight or not all(entry["closed_early"] for entry in streams):
            await asyncio.sleep(0.05)
    assert not generation._local and not generation._background
    leftover = [
        task for task in asyncio.all_tasks() if task is not asyncio.current_task() and not task.done()
    ]
    assert not [task for task in leftover if "Generation" in repr(task) or "title_generate" in repr(task)]
    assert_no_logged_errors(caplog)


# -- through daphne ---------------------------------------------------------------------------
def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status").read().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_it_keeps_memory_bounded_for_a_browser_that_reads_slowly(own_server, user):
    """A tab that stops reading must not stall the reply for others, nor grow the server without
    bound: bytes queued for it are the reply's (deltas never repeat text), not time's."""
    server = own_server()
    cookie = await database_sync_to_async(session_cookie)(user)
    fast = await live_client(server, cookie)
    await fast.send(type="send", conversation=None, content="first", model="llama3.2")
    first = await fast.until("turn")
    await fast.until("done", reply=first["reply"]["id"])

    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    slow = await live_client(server, cookie, sock=raw, max_queue=1)
    await slow.send(type="subscribe", conversation=first["conversation"])
    baseline = rss_kib(server.process.pid)

    server.double.configure(reply_tokens=150_000)  # about 900 KB of text, as fast as it comes
    await fast.send(type="send", conversation=first["conversation"], content="a long one", model="llama3.2")
    turn = await fast.until("turn")
    done = await fast.until("done", reply=turn["reply"]["id"], timeout=60)
    assert done["status"] == "complete"
    reply = await Message.objects.aget(pk=turn["reply"]["id"])
    assert fast.text(reply.id) == reply.content and len(reply.content) > 500_000
    grown_mib = (rss_kib(server.process.pid) - baseline) / 1024
    assert grown_mib < 64, f"daphne grew {grown_mib:.0f} MiB for a {len(reply.content) // 1024} KiB reply"

    raw.shutdown(socket.SHUT_RDWR)  # the slow tab goes away without a goodbye
    await fast.send(type="ping")
    await fast.until("pong")
    await fast.close()
    assert_clean_log(server.log())


FAULTS = [
    # (the double's configuration, the reply's status, its error kind); OLLAMA_TIMEOUT is 1 s
    ({"fail_status": 404}, "error", "model_not_found"),
    ({"fail_status": 500, "fail_message": "llama runner process has terminated"}, "error", "http"),
    ({"fail_status": 503}, "error", "busy"),
    ({"error_after": 3}, "error", "stream"),
    ({"drop_after": 3}, "error", "dropped"),
    ({"stall_after": 2}, "error", "timeout"),
    ({"tokens_per_second": 4, "reply_tokens": 3}, "complete", ""),  # slow, under the timeout
    ({"first_token_delay": 0.5}, "complete", ""),  # loading the model
]


async def test_it_shows_every_fault_readably_keeps_the_message_and_logs_no_exception(own_server, user):
    server = own_server(OLLAMA_TIMEOUT="1")
    cookie = await database_sync_to_async(session_cookie)(user)
    client = await live_client(server, cookie)
    for index, (fault, status, kind) in enumerate(FAULTS):
        server.double.reset()
        server.double.configure(**fault)
        content = f"question {index}"
        await client.send(type="send", conversation=None, content=content, model="llama3.2", ref=str(index))
        turn = await client.until("turn", ref=str(index))
        done = await client.until("done", reply=turn["reply"]["id"], timeout=10)
        assert (done["status"], done["error_kind"]) == (status, kind), fault
        if status == "error":
            assert done["error"] and "Traceback" not in done["error"] and "Error(" not in done["error"]
        saved = await rows(turn["conversation"])
        assert saved[0] == ("user", "complete", content)  # what was typed is kept
        assert saved[1][1] == status
        page = await database_sync_to_async(_conversation_page)(cookie, turn["conversation"])
        assert (done["error"] or done["status"]) and (not done["error"] or _escaped(done["error"]) in page)
    server.double.reset()
    server.double.configure(pull_fail_after=2)
    dashboard = await live_client(server, await database_sync_to_async(_admin_cookie)(), path="/ws/models/")
    await dashboard.send(type="pull", model="llama3.2:1b")
    failed = await dashboard.until("operation", timeout=10)
    while failed["operation"]["status"] == "running":
        failed = await dashboard.until("operation", timeout=10)
    assert failed["operation"]["status"] == "failed"
    assert failed["operation"]["error"] == "Ollama reported an error: max retries exceeded: unexpected EOF"
    await dashboard.close()
    await client.close()
    assert_clean_log(server.log())


def _conversation_page(cookie: str, conversation_id: int) -> str:
    client = Client()
    client.cookies["sessionid"] = cookie
    return client.get(f"/c/{conversation_id}/").content.decode()


def _admin_cookie() -> str:
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.filter(is_staff=True).first()
    return session_cookie(admin)


def _escaped(text: str) -> str:
    from django.utils.html import escape

    return escape(text)


async def test_it_keeps_the_reply_interrupted_and_the_pull_failed_after_a_kill(own_server, user, admin_user):
    settings = {"STREAM_CHECKPOINT_INTERVAL": "0.1", "STREAM_STALE_AFTER": "0.3"}
    server = own_server(**settings)
    server.double.configure(tokens_per_second=40, reply_tokens=2000, pull_seconds=60)
    chat = await live_client(server, await database_sync_to_async(session_cookie)(user))
    dashboard = await live_client(
        server, await database_sync_to_async(session_cookie)(admin_user), path="/ws/models/"
    )
    await dashboard.send(type="pull", model="llama3.2:1b")
    started = await dashboard.until("started")
    await chat.send(type="send", conversation=None, content="A long answer please", model="llama3.2")
    turn = await chat.until("turn")
    reply_id = turn["reply"]["id"]
    while not (await Message.objects.aget(pk=reply_id)).content:  # checkpointed by the other process
        await chat.until("delta", reply=reply_id)

    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    killed_at = timezone.now()
    stale = timedelta(seconds=0.3)
    while True:  # the rows' last heartbeat must be older than STREAM_STALE_AFTER: a clock, no event
        operation = await Operation.objects.aget(pk=started["operation"]["id"])
        reply = await Message.objects.aget(pk=reply_id)
        if timezone.now() - max(operation.updated_at, reply.updated_at) > stale:
            break
        await asyncio.sleep(0.05)
    assert timezone.now() - killed_at < timedelta(seconds=5)

    restarted = own_server(**settings)
    reply = await Message.objects.aget(pk=reply_id)
    operation = await Operation.objects.aget(pk=started["operation"]["id"])
    assert reply.status == "interrupted" and reply.content  # the text so far is kept
    assert operation.status == "failed" and operation.error == "server restarted"
    user_message = await Message.objects.filter(conversation_id=turn["conversation"], role="user").afirst()
    assert user_message.content == "A long answer please"
    cookie = await database_sync_to_async(session_cookie)(user)
    page = httpx.get(f"{restarted.url}/c/{turn['conversation']}/", cookies={"sessionid": cookie}).text
    assert "This reply was interrupted" in page
    assert_clean_log(restarted.log())
