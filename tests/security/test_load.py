"""Load without loss: many users sending at once through real websockets to daphne.

`make test` runs the full size, 100 users × 5 messages, on SQLite and (its second pass) on
PostgreSQL with Redis (some 6 s and 20 s); `LOAD_USERS` and `LOAD_MESSAGES` change it (a
smaller size for a slow machine, a larger one to find limits). Every user message and every
complete reply must be in the database exactly once, with no error frame, no "database is
locked" and no unhandled exception in the server log.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import pytest
from channels.db import database_sync_to_async

from chat.models import Message
from tests.conftest import make_user, session_cookie
from tests.security.conftest import assert_clean_log, live_client

pytestmark = pytest.mark.e2e

USERS = int(os.environ.get("LOAD_USERS", "100"))
MESSAGES = int(os.environ.get("LOAD_MESSAGES", "5"))


@database_sync_to_async
def users_with_cookies(count: int) -> list[tuple[object, str]]:
    users = [make_user(f"user{index:03d}") for index in range(count)]
    return [(user, session_cookie(user)) for user in users]


async def one_user(server, cookie: str, name: str, opening: asyncio.Semaphore) -> dict[int, str]:
    """Send MESSAGES messages in one conversation, each when the last reply is done, as a person
    does; return {reply id: the text the page rebuilt from the frames}."""
    async with opening:
        client = await live_client(server, cookie)
    seen: dict[int, str] = {}
    conversation = None
    try:
        for index in range(MESSAGES):
            content = f"{name} message {index}"
            await client.send(
                type="send", conversation=conversation, content=content, model="llama3.2", ref=str(index)
            )
            turn = await client.until_any(("turn", "error"), timeout=60)
            assert turn["type"] == "turn" and turn["reply"]["status"] == "streaming", turn
            conversation, reply = turn["conversation"], turn["reply"]["id"]
            done = await client.until_any(("done", "error"), timeout=60)
            assert done["type"] == "done" and done["reply"] == reply and done["status"] == "complete", done
            seen[reply] = client.text(reply)
        return seen
    finally:
        await client.close()


async def test_it_keeps_every_message_and_reply_under_load(own_server, transactional_db):
    server = own_server()  # the default limits: 2 replies running, 20 messages a minute
    server.double.configure(tokens_per_second=200, reply_tokens=40)
    accounts = await users_with_cookies(USERS)
    # People open the page over a few moments, not in one instant: ten handshakes at a time.
    opening = asyncio.Semaphore(10)
    users = [one_user(server, cookie, user.username, opening) for user, cookie in accounts]
    try:
        seen = await asyncio.gather(*users)
    except Exception as failure:
        noisy = ("WSCONNECT", "WSDISCONNECT", "HTTP Request", "webui.fleet")
        log = "\n".join(line for line in server.log().splitlines() if not any(word in line for word in noisy))
        raise AssertionError(f"{failure!r}; the server log says:\n{log[-5000:]}") from failure

    stored = await database_sync_to_async(list)(
        Message.objects.values_list("id", "conversation__owner__username", "role", "status", "content")
    )
    user_messages = Counter(
        (owner, content) for _id, owner, role, _status, content in stored if role == "user"
    )
    expected = Counter(
        (user.username, f"{user.username} message {index}")
        for user, _ in accounts
        for index in range(MESSAGES)
    )
    assert user_messages == expected  # each one, exactly once
    replies = {id_: (status, content) for id_, _owner, role, status, content in stored if role == "assistant"}
    streamed = {reply: text for per_user in seen for reply, text in per_user.items()}
    assert len(replies) == USERS * MESSAGES and set(replies) == set(streamed)
    assert all(replies[reply] == ("complete", text) for reply, text in streamed.items())
    streams = [
        entry
        for entry in server.double.requests
        if entry["path"] == "/api/chat" and entry["body"].get("stream", True)
    ]
    assert len(streams) == USERS * MESSAGES  # one generation per message, none repeated
    assert_clean_log(server.log())
