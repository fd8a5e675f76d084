"""End to end: a websocket client or plain HTTP → daphne → Channels → gateway → the Ollama double."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import timedelta

import httpx
import pytest
from channels.db import database_sync_to_async
from django.utils import timezone
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from models_admin.models import Operation
from models_admin.services import operations_mark_failed
from tests.conftest import database_url, session_cookie, start_daphne, stop_daphne

pytestmark = pytest.mark.e2e


async def open_socket(server, user):
    cookie = await database_sync_to_async(session_cookie)(user)
    return await ws_connect(
        f"{server.ws_url}/ws/models/",
        origin=server.origin,
        additional_headers={"Cookie": f"sessionid={cookie}"},
    )


async def frames_until(socket, predicate, timeout: float = 15.0) -> list[dict]:
    seen = []
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            seen.append(frame)
            if predicate(frame):
                return seen


def finished(status: str):
    return lambda frame: frame["type"] == "operation" and frame["operation"]["status"] == status


async def test_it_pulls_through_daphne_with_live_progress(server, admin_user):
    server.double.configure(pull_seconds=1.0)
    async with await open_socket(server, admin_user) as socket:
        assert json.loads(await socket.recv()) == {"type": "snapshot", "operations": []}

        await socket.send(json.dumps({"type": "pull", "model": "llama3.2:1b"}))

        frames = await frames_until(socket, finished("succeeded"))
    progress = [frame["operation"] for frame in frames if frame["type"] == "operation"]
    assert any(0 < (operation["percent"] or 0) < 100 for operation in progress)
    assert "llama3.2:1b" in server.double.models
    operation = await Operation.objects.aget()
    assert operation.status == "succeeded" and operation.progress["percent"] == 100.0


async def test_it_cancels_through_daphne(server, admin_user):
    server.double.configure(pull_seconds=10.0)
    async with await open_socket(server, admin_user) as socket:
        await socket.recv()
        await socket.send(json.dumps({"type": "pull", "model": "llama3.2:1b"}))
        started = (await frames_until(socket, lambda frame: frame["type"] == "started"))[-1]
        await server.double.await_request("/api/pull")

        await socket.send(json.dumps({"type": "cancel", "operation": started["operation"]["id"]}))

        await server.double.await_close("/api/pull")
        await frames_until(socket, finished("cancelled"))


async def test_it_refuses_a_normal_users_socket_through_daphne(server, user):
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(server, user)
    assert refused.value.response.status_code == 403


def test_it_runs_a_pull_started_by_a_plain_form_post_under_daphne(server, admin_user):
    """Without JavaScript the form POSTs; the pull must outlive the request in daphne's loop."""
    server.double.configure(pull_seconds=0.5)
    with httpx.Client(base_url=server.url, cookies={"sessionid": session_cookie(admin_user)}) as client:
        page = client.get("/models/")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)

        response = client.post(
            "/models/pull/",
            data={"model": "llama3.2:1b", "csrfmiddlewaretoken": token},
            headers={"Referer": server.url},
        )

        assert response.status_code == 302
        server.double.wait_for_request("/api/pull")
        deadline = timezone.now() + timedelta(seconds=15)
        operation = Operation.objects.get()
        while operation.status == "running" and timezone.now() < deadline:
            time.sleep(0.05)  # the row is written by another process: nothing to await
            operation.refresh_from_db()
        assert operation.status == "succeeded", operation.error
        assert "llama3.2:1b" in server.double.models
        page = client.get("/models/").text
        assert 'data-model="llama3.2:1b"' in page


def test_it_marks_operations_of_a_dead_process_failed_at_startup(server, admin_user, tmp_path):
    from django.db import connection

    stale = Operation.objects.create(kind="pull", model="llama3.2", user=admin_user)
    fresh = Operation.objects.create(kind="pull", model="qwen3", user=admin_user)
    Operation.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - timedelta(minutes=5))

    second = start_daphne(database_url(connection.settings_dict), server.double, tmp_path)
    stop_daphne(second)

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == "failed" and stale.error == "server restarted" and stale.finished_at
    assert fresh.status == "running"  # a live worker's heartbeat is recent: left alone


def test_it_counts_what_startup_recovery_marked(db, admin_user):
    Operation.objects.create(kind="push", model="a", user=admin_user)
    Operation.objects.filter(model="a").update(updated_at=timezone.now() - timedelta(hours=1))
    Operation.objects.create(kind="pull", model="b", user=admin_user, status="succeeded")

    assert operations_mark_failed() == 1
    assert operations_mark_failed() == 0
    assert Operation.objects.get(model="b").status == "succeeded"
