"""The chat websocket, driven in-process with WebsocketCommunicator against the Ollama double."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation, Message

REPLY = "Hello there! Here is a list:\n\n- one\n- two 🙂\n\n```python\nprint('hi')\n```\n"


@database_sync_to_async
def reply_row(reply_id: int) -> Message:
    return Message.objects.get(pk=reply_id)


@database_sync_to_async
def messages_of(conversation_id: int) -> list[tuple[str, str, str]]:
    return list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("id")
        .values_list("role", "status", "content")
    )


async def send_hello(socket, content: str = "Hi", conversation=None, model: str = "llama3.2"):
    await socket.send(type="send", conversation=conversation, content=content, model=model, ref="r1")
    return await socket.until("turn")


async def test_it_streams_a_reply_and_saves_it_with_statistics(connect, drain, double, user):
    double.configure(reply=REPLY)
    socket = await connect(user)
    assert socket.connected
    turn = await send_hello(socket)
    assert turn["created"] and turn["ref"] == "r1"
    assert turn["user_message"]["content"] == "Hi"
    reply_id = turn["reply"]["id"]
    done = await socket.until("done", reply=reply_id)
    assert done["status"] == "complete"
    assert socket.text(reply_id) == REPLY
    seqs = [frame["seq"] for frame in socket.frames if frame["type"] == "delta"]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    row = await reply_row(reply_id)
    assert row.status == "complete" and row.content == REPLY
    assert row.eval_count and row.eval_duration and row.total_duration and row.prompt_eval_count
    assert row.done_reason == "stop"
    assert await messages_of(turn["conversation"]) == [
        ("user", "complete", "Hi"),
        ("assistant", "complete", REPLY),
    ]


async def test_it_sends_generation_options_as_ollama_expects(connect, drain, double, user):
    conversation = await Conversation.objects.acreate(
        owner=user,
        model="llama3.2",
        system_prompt="Be brief.",
        options={"temperature": 0.2, "num_predict": 5, "keep_alive": "10m", "think": False},
    )
    socket = await connect(user)
    turn = await send_hello(socket, conversation=conversation.id, model="")
    await socket.until("done", reply=turn["reply"]["id"])
    request = next(entry for entry in double.requests if entry["path"] == "/api/chat")
    body = request["body"]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["options"] == {"temperature": 0.2, "num_predict": 5}
    assert "max_tokens" not in body["options"]
    assert body["keep_alive"] == "10m" and body["think"] is False
    row = await reply_row(turn["reply"]["id"])
    assert row.done_reason == "length" and row.eval_count == 5


async def test_it_generates_a_title_after_the_first_reply(connect, drain, double, user):
    double.configure(reply="Greeting Small Talk")
    socket = await connect(user)
    turn = await send_hello(socket, content="hello, how are you doing today my friend?")
    assert turn["title"] == "hello, how are you doing today my friend?"
    title = await socket.until("title", conversation=turn["conversation"])
    assert title["title"] == "Greeting Small Talk"
    conversation = await Conversation.objects.aget(pk=turn["conversation"])
    assert conversation.title == "Greeting Small Talk"


async def test_it_stops_a_reply_closes_upstream_and_keeps_the_text(connect, drain, double, user):
    double.configure(tokens_per_second=40, reply_tokens=400)
    socket = await connect(user)
    turn = await send_hello(socket)
    reply_id = turn["reply"]["id"]
    await socket.until("delta", reply=reply_id)
    await socket.send(type="stop", reply=reply_id)
    done = await socket.until("done", reply=reply_id, timeout=1.0)
    assert done["status"] == "stopped"
    closed = await double.await_close("/api/chat", timeout=1.0)
    assert closed["closed_early"]
    row = await reply_row(reply_id)
    assert row.status == "stopped" and row.content and row.content == socket.text(reply_id)


async def test_it_resumes_a_reply_after_reconnecting(connect, drain, double, user):
    double.configure(tokens_per_second=200, reply_tokens=120)
    first = await connect(user)
    turn = await send_hello(first)
    reply_id = turn["reply"]["id"]
    await first.until("delta", reply=reply_id)
    await first.until("delta", reply=reply_id)
    have = first.text(reply_id)
    await first.close()

    second = await connect(user)
    await second.send(
        type="subscribe", conversation=turn["conversation"], replies={str(reply_id): [len(have), 0]}
    )
    snapshot = await second.until("snapshot", reply=reply_id)
    assert snapshot["o"] == len(have)
    await second.until("done", reply=reply_id)
    second.frames.insert(0, {"type": "delta", "reply": reply_id, "o": 0, "c": have})
    row = await reply_row(reply_id)
    assert second.text(reply_id) == row.content
    assert row.eval_count == 120


async def test_it_shows_the_stream_in_two_tabs(connect, drain, double, user):
    double.configure(tokens_per_second=300, reply_tokens=60)
    first = await connect(user)
    second = await connect(user)
    turn = await send_hello(first)
    await second.send(
        type="subscribe", conversation=turn["conversation"], replies={str(turn["reply"]["id"]): [0, 0]}
    )
    for socket in (first, second):
        await socket.until("done", reply=turn["reply"]["id"])
    row = await reply_row(turn["reply"]["id"])
    assert first.text(row.id) == second.text(row.id) == row.content


async def test_it_regenerates_the_last_reply(connect, drain, double, user):
    socket = await connect(user)
    turn = await send_hello(socket)
    await socket.until("done", reply=turn["reply"]["id"])
    await socket.send(type="regenerate", reply=turn["reply"]["id"])
    again = await socket.until("turn", kind="regenerate")
    assert again["replaced"] == turn["reply"]["id"]
    await socket.until("done", reply=again["reply"]["id"])
    rows = await messages_of(turn["conversation"])
    assert [role for role, _status, _content in rows] == ["user", "assistant"]


async def test_it_edits_a_message_and_replaces_what_followed(connect, drain, double, user):
    socket = await connect(user)
    first = await send_hello(socket, content="first question")
    await socket.until("done", reply=first["reply"]["id"])
    second = await send_hello(socket, content="second question", conversation=first["conversation"])
    await socket.until("done", reply=second["reply"]["id"])
    await socket.send(type="edit", message=first["user_message"]["id"], content="better question")
    edited = await socket.until("turn", kind="edit")
    await socket.until("done", reply=edited["reply"]["id"])
    rows = await messages_of(first["conversation"])
    assert (rows[0][0], rows[0][2]) == ("user", "better question")
    assert len(rows) == 2


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"fail_status": 404}, "model_not_found"),
        ({"fail_status": 500}, "http"),
        ({"fail_status": 503}, "busy"),
        ({"error_after": 3}, "stream"),
        ({"drop_after": 3}, "dropped"),
    ],
)
async def test_it_reports_ollama_faults_in_the_reply_and_keeps_the_message(
    connect, drain, double, user, fault, kind
):
    double.configure(**fault)
    socket = await connect(user)
    turn = await send_hello(socket, content="please answer")
    done = await socket.until("done", reply=turn["reply"]["id"])
    assert done["status"] == "error" and done["error_kind"] == kind and done["error"]
    rows = await messages_of(turn["conversation"])
    assert rows[0] == ("user", "complete", "please answer")
    assert rows[1][1] == "error"


async def test_it_reports_a_stalled_stream_after_the_timeout(connect, drain, double, user, settings):
    settings.OLLAMA_TIMEOUT = 0.5
    double.configure(stall_after=2)
    socket = await connect(user)
    turn = await send_hello(socket)
    done = await socket.until("done", reply=turn["reply"]["id"])
    assert done["error_kind"] == "timeout"
    row = await reply_row(turn["reply"]["id"])
    assert row.status == "error" and row.content  # the partial text is kept


async def test_it_reports_an_unreachable_ollama(connect, drain, user, settings):
    from tests.conftest import free_port

    settings.OLLAMA_HOST = f"http://127.0.0.1:{free_port()}"
    socket = await connect(user)
    turn = await send_hello(socket)
    done = await socket.until("done", reply=turn["reply"]["id"])
    assert done["error_kind"] == "unreachable" and "127.0.0.1" in done["error"]


async def test_it_limits_concurrent_generations_per_user(connect, drain, double, user, settings):
    settings.MAX_GENERATIONS_PER_USER = 1
    double.configure(tokens_per_second=50, reply_tokens=100)
    socket = await connect(user)
    first = await send_hello(socket)
    await socket.send(
        type="send", conversation=first["conversation"], content="another", model="llama3.2", ref="r2"
    )
    second = await socket.until("turn", ref="r2")
    assert second["reply"]["status"] == "error" and second["reply"]["error_kind"] == "limit"
    assert second["user_message"]["content"] == "another"
    await socket.send(type="stop", reply=first["reply"]["id"])
    await socket.until("done", reply=first["reply"]["id"])


async def test_it_hides_other_users_conversations(connect, drain, double, user, other_user):
    owner = await connect(user)
    turn = await send_hello(owner)
    await owner.until("done", reply=turn["reply"]["id"])
    intruder = await connect(other_user)
    await intruder.send(
        type="subscribe", conversation=turn["conversation"], replies={str(turn["reply"]["id"]): [0, 0]}
    )
    assert (await intruder.until("error"))["code"] == "not_found"
    for frame in (
        {"type": "send", "conversation": turn["conversation"], "content": "x", "model": "llama3.2"},
        {"type": "stop", "reply": turn["reply"]["id"]},
        {"type": "regenerate", "reply": turn["reply"]["id"]},
        {"type": "edit", "message": turn["user_message"]["id"], "content": "x"},
    ):
        await intruder.send(**frame)
        error = await intruder.until("error")
        assert error["code"] == "not_found"
        assert "Hi" not in str(error)
    assert len(await messages_of(turn["conversation"])) == 2


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid"),
        ("[1, 2]", "invalid"),
        ('{"type": "launch"}', "unknown_type"),
        ('{"type": "send", "content": 5, "model": "llama3.2"}', "invalid"),
        ('{"type": "send", "content": "   ", "model": "llama3.2"}', "empty"),
        ('{"type": "stop", "reply": "abc"}', "invalid"),
        ('{"type": "stop", "reply": 99999999}', "not_found"),
        ('{"type": "subscribe", "conversation": -1}', "invalid"),
        ("[" * 50000 + "]" * 50000, "invalid"),
    ],
)
async def test_it_answers_bad_frames_with_an_error_frame(connect, drain, user, raw, code):
    socket = await connect(user)
    await socket.send_raw(raw)
    error = await socket.until("error")
    assert error["code"] == code
    await socket.send(type="ping")
    assert (await socket.until("pong"))["type"] == "pong"


async def test_it_refuses_oversized_frames(connect, drain, user, settings):
    settings.WS_MAX_FRAME_BYTES = 1000
    socket = await connect(user)
    await socket.send(type="send", content="x" * 2000, model="llama3.2")
    assert (await socket.until("error"))["code"] == "too_large"


async def test_it_refuses_messages_over_the_length_limit_clearly(connect, drain, user, settings):
    settings.MAX_MESSAGE_CHARS = 10
    socket = await connect(user)
    await socket.send(type="send", content="x" * 11, model="llama3.2")
    error = await socket.until("error")
    assert error["code"] == "too_long" and "10" in error["message"]


async def test_it_refuses_anonymous_pending_and_foreign_origin_sockets(connect, pending_user, user):
    anonymous = await connect(None)
    assert not anonymous.connected
    pending = await connect(pending_user)
    assert not pending.connected
    foreign = await connect(user, origin="http://evil.example")
    assert not foreign.connected


async def test_it_marks_stale_streaming_replies_interrupted(transactional_db, user, settings):
    from datetime import timedelta

    from django.utils import timezone

    from chat.services import replies_mark_interrupted

    conversation = await Conversation.objects.acreate(owner=user, model="llama3.2")
    stale = await Message.objects.acreate(
        conversation=conversation, role="assistant", status="streaming", content="partial"
    )
    fresh = await Message.objects.acreate(conversation=conversation, role="assistant", status="streaming")
    await Message.objects.filter(pk=stale.pk).aupdate(updated_at=timezone.now() - timedelta(minutes=5))
    assert await database_sync_to_async(replies_mark_interrupted)() == 1
    stale = await reply_row(stale.pk)
    assert stale.status == "interrupted" and stale.content == "partial"
    assert (await reply_row(fresh.pk)).status == "streaming"
    await asyncio.sleep(0)


async def test_it_stops_and_snapshots_a_reply_on_request_of_another_worker(connect, drain, double, user):
    from channels.layers import get_channel_layer

    from chat import generation

    double.configure(tokens_per_second=40, reply_tokens=400)
    socket = await connect(user)
    turn = await send_hello(socket)
    reply_id = turn["reply"]["id"]
    await socket.until("delta", reply=reply_id)
    layer = get_channel_layer()
    inbox = await layer.new_channel()
    await generation.request_remote_snapshot(reply_id, channel=inbox, have=[0, 0])
    answer = await asyncio.wait_for(layer.receive(inbox), 2)
    assert answer["type"] == "chat.frame" and '"type":"snapshot"' in answer["text"]
    await generation.request_remote_stop(reply_id)
    done = await socket.until("done", reply=reply_id, timeout=1.0)
    assert done["status"] == "stopped"


async def test_it_closes_the_socket_when_its_session_logs_out(connect, drain, user):
    from django.test import AsyncClient

    from webui.channels import session_group

    socket = await connect(user)
    cookie = next(
        value.split("=", 1)[1]
        for name, value in socket.communicator.scope["headers"]
        if name == b"cookie"
        for value in [value.decode()]
    )
    client = AsyncClient()
    client.cookies["sessionid"] = cookie
    assert session_group(cookie)
    response = await client.post("/accounts/logout/")
    assert response.status_code == 302
    output = await socket.communicator.receive_output(2)
    assert output == {"type": "websocket.close", "code": 4401}


async def test_it_answers_in_the_users_language(connect, drain, user, double):
    from webui.models import Profile

    await Profile.objects.filter(user=user).aupdate(language="zh-hans")
    socket = await connect(user)
    await socket.send(type="send", content="   ", model="llama3.2")
    error = await socket.until("error")
    assert error["code"] == "empty" and "Type a message first." not in error["message"]
    double.configure(fail_status=503)
    turn = await send_hello(socket)
    done = await socket.until("done", reply=turn["reply"]["id"])
    assert done["error_kind"] == "busy" and "Ollama" in done["error"] and "busy" not in done["error"]
