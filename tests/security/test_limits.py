"""Abuse limits: messages per minute, running replies from many tabs at once, message and frame
sizes; each answered clearly, and every limit documented (docs/security.md and the README).

Log-in and sign-up throttling are in tests/webui/test_throttle.py; single limits of the chat
socket in tests/chat/test_consumers.py.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.db import connection

from chat import generation
from chat.limits import WINDOW, message_rate_wait
from chat.models import Message
from tests.conftest import ROOT, database_url, require, session_cookie, start_daphne, stop_daphne
from tests.security.conftest import live_client

LIMIT_SETTINGS = [
    "MAX_MESSAGE_CHARS",
    "WS_MAX_FRAME_BYTES",
    "MAX_MESSAGES_PER_MINUTE",
    "MAX_GENERATIONS_PER_USER",
    "LOGIN_FAILURE_LIMIT",
    "LOGIN_FAILURE_WINDOW",
    "SIGNUP_LIMIT",
    "SIGNUP_WINDOW",
]


# -- the sliding window ---------------------------------------------------------------------
def test_it_allows_the_limit_within_a_minute_then_says_how_long_to_wait(settings):
    settings.MAX_MESSAGES_PER_MINUTE = 3
    start = 1_000 * WINDOW + 10.0  # 10 s into a minute
    assert [message_rate_wait(user_id=1, now=start + i) for i in range(3)] == [0, 0, 0]
    wait = message_rate_wait(user_id=1, now=start + 3)
    assert 0 < wait <= 2 * WINDOW
    assert message_rate_wait(user_id=2, now=start + 3) == 0  # per user
    assert message_rate_wait(user_id=1, now=start + 3 + wait) == 0  # the promised wait is enough


def test_it_does_not_count_refused_messages(settings):
    settings.MAX_MESSAGES_PER_MINUTE = 2
    start = 2_000 * WINDOW
    message_rate_wait(user_id=1, now=start)
    message_rate_wait(user_id=1, now=start + 1)
    first_wait = message_rate_wait(user_id=1, now=start + 2)
    for second in range(3, 30):  # hammering while limited does not push the wait further
        assert message_rate_wait(user_id=1, now=start + second) > 0
    assert message_rate_wait(user_id=1, now=start + 2 + first_wait) == 0


def test_it_slides_so_a_minutes_boundary_cannot_double_the_limit(settings):
    settings.MAX_MESSAGES_PER_MINUTE = 10
    end_of_minute = 3_000 * WINDOW + WINDOW - 1
    assert all(message_rate_wait(user_id=1, now=end_of_minute) == 0 for _ in range(10))
    next_minute = end_of_minute + 2  # a fresh fixed window would allow 10 more here
    allowed = sum(message_rate_wait(user_id=1, now=next_minute) == 0 for _ in range(10))
    assert allowed <= 1
    assert message_rate_wait(user_id=1, now=end_of_minute + 2 * WINDOW) == 0  # all forgotten


def test_it_turns_off_at_zero(settings):
    settings.MAX_MESSAGES_PER_MINUTE = 0
    assert all(message_rate_wait(user_id=1) == 0 for _ in range(100))


# -- through the socket ---------------------------------------------------------------------
@database_sync_to_async
def user_messages(user) -> list[str]:
    return list(
        Message.objects.filter(conversation__owner=user, role="user")
        .order_by("id")
        .values_list("content", flat=True)
    )


async def test_it_refuses_sends_edits_and_regenerations_over_the_limit_clearly(
    open_socket, double, user, settings
):
    settings.MAX_MESSAGES_PER_MINUTE = 3
    socket = await open_socket(user)
    await socket.send(type="send", conversation=None, content="one", model="llama3.2", ref="1")
    turn = await socket.until("turn", ref="1")
    await socket.until("done", reply=turn["reply"]["id"])
    await socket.send(type="regenerate", reply=turn["reply"]["id"], ref="2")
    regenerated = await socket.until("turn", ref="2")
    await socket.until("done", reply=regenerated["reply"]["id"])
    await socket.send(type="edit", message=turn["user_message"]["id"], content="one, edited", ref="3")
    edited = await socket.until("turn", ref="3")
    await socket.until("done", reply=edited["reply"]["id"])
    for frame in (
        {"type": "send", "conversation": turn["conversation"], "content": "four", "model": "llama3.2"},
        {"type": "edit", "message": turn["user_message"]["id"], "content": "again"},
        {"type": "regenerate", "reply": edited["reply"]["id"]},
    ):
        await socket.send(**frame, ref="over")
        error = await socket.until("error", ref="over")
        assert error["code"] == "rate_limited"
        assert re.search(
            r"too fast \(the limit is 3 a minute\); try again in \d+ seconds?\.", error["message"]
        )
    await socket.send(type="ping")  # other frames still work
    await socket.until("pong")
    assert await user_messages(user) == ["one, edited"]  # nothing refused was saved half-way


async def test_it_counts_per_user_not_per_socket(open_socket, double, user, other_user, settings):
    settings.MAX_MESSAGES_PER_MINUTE = 1
    first, second = await open_socket(user), await open_socket(user)
    await first.send(type="send", conversation=None, content="a", model="llama3.2", ref="a")
    await first.until("turn", ref="a")
    await second.send(type="send", conversation=None, content="b", model="llama3.2", ref="b")
    assert (await second.until("error", ref="b"))["code"] == "rate_limited"
    someone_else = await open_socket(other_user)
    await someone_else.send(type="send", conversation=None, content="c", model="llama3.2", ref="c")
    await someone_else.until("turn", ref="c")


@pytest.mark.engines
@pytest.mark.e2e
async def test_it_shares_the_count_between_worker_processes(transactional_db, double, user, tmp_path):
    """Two daphnes on Redis: messages sent through one count against the limit on the other."""
    require(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL=postgres://…)")
    require(bool(django_settings.REDIS_URL), "Redis (REDIS_URL=redis://…)")
    # A prefix of its own, new on every run: a rerun must not find the first run's counts.
    env = {"MAX_MESSAGES_PER_MINUTE": "2", "CHANNELS_PREFIX": f"limits{uuid.uuid4().hex}"}
    workers = [
        start_daphne(database_url(connection.settings_dict), double, tmp_path, **env) for _ in range(2)
    ]
    try:
        cookie = await database_sync_to_async(session_cookie)(user)
        for index, worker in enumerate([*workers, workers[0]]):
            client = await live_client(worker, cookie)
            await client.send(type="send", conversation=None, content=f"m{index}", model="llama3.2", ref="r")
            frame = await client.until("error" if index == 2 else "turn", ref="r", timeout=30)
            await client.close()
        assert frame["code"] == "rate_limited"
    finally:
        for worker in workers:
            stop_daphne(worker)


# -- every limit is documented --------------------------------------------------------------
def test_it_documents_every_limit_and_its_default():
    text = (Path(ROOT) / "docs" / "security.md").read_text()
    for name in LIMIT_SETTINGS:
        default = getattr(django_settings, name)
        assert f"`{name}`" in text, name
        row = next(line for line in text.splitlines() if f"`{name}`" in line and line.startswith("|"))
        assert f"{default:_}".replace("_", "") in row.replace(",", "").replace("_", ""), (name, default)


def test_it_lists_every_limit_in_the_readmes_settings_table():
    text = (Path(ROOT) / "README.md").read_text()
    for name in [*LIMIT_SETTINGS, "SIGNUP_MODE"]:
        row = next((line for line in text.splitlines() if f"`{name}`" in line and line.startswith("|")), "")
        assert row, f"{name} is missing from the README's settings table"
        names = re.findall(r"`([A-Z_]+)`", row.split("|")[1])
        defaults = row.split("|")[2].split("/")
        default = getattr(django_settings, name)
        assert f"{default}" in defaults[names.index(name)].replace("`", "").replace(",", ""), (name, row)


# -- answered clearly, nothing typed lost -------------------------------------------------
async def test_it_caps_running_replies_when_many_tabs_send_at_once(open_socket, double, user, settings):
    """Six tabs of one person send in the same instant: two replies run, four are refused with
    a reason and a Retry, and all six messages are kept."""
    settings.MAX_GENERATIONS_PER_USER = 2
    settings.MAX_MESSAGES_PER_MINUTE = 0
    double.configure(tokens_per_second=5, reply_tokens=500)  # still running when all have answered
    tabs = [await open_socket(user) for _ in range(6)]
    await asyncio.gather(
        *(
            tab.send(type="send", conversation=None, content=f"tab {index}", model="llama3.2", ref=str(index))
            for index, tab in enumerate(tabs)
        )
    )
    turns = await asyncio.gather(*(tab.until("turn", ref=str(index)) for index, tab in enumerate(tabs)))
    assert Counter(turn["reply"]["status"] for turn in turns) == {"streaming": 2, "error": 4}
    for turn in turns:
        if turn["reply"]["status"] == "error":
            assert turn["reply"]["error_kind"] == "limit"
            assert turn["reply"]["error"] == (
                "You already have 2 replies running; wait for one to finish, then retry."
            )
    assert sorted(await user_messages(user)) == [f"tab {index}" for index in range(6)]
    for index, turn in enumerate(turns):
        if turn["reply"]["status"] == "streaming":
            await tabs[index].send(type="stop", reply=turn["reply"]["id"])
            assert (await tabs[index].until("done", reply=turn["reply"]["id"]))["status"] == "stopped"
    assert not generation._local


async def test_it_refuses_too_long_messages_and_too_large_frames_clearly(open_socket, double, user, settings):
    settings.MAX_MESSAGE_CHARS = 50
    settings.WS_MAX_FRAME_BYTES = 400
    socket = await open_socket(user)
    await socket.send(type="send", conversation=None, content="x" * 51, model="llama3.2", ref="long")
    error = await socket.until("error", ref="long")
    assert error["code"] == "too_long" and "50" in error["message"] and "51" in error["message"]
    await socket.send(type="send", conversation=None, content="y" * 401, model="llama3.2", ref="large")
    error = await socket.until("error")
    assert error["code"] == "too_large" and error["message"] == "That frame is too large."
    await socket.send(type="send", conversation=None, content="x" * 50, model="llama3.2", ref="ok")
    turn = await socket.until("turn", ref="ok")  # the socket stayed open; at the limit is fine
    await socket.until("done", reply=turn["reply"]["id"])
    assert await user_messages(user) == ["x" * 50]
