"""Model pulls across two daphne workers sharing PostgreSQL and the Redis channel layer."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection
from websockets.asyncio.client import connect as ws_connect

from models_admin.models import AuditEntry, Operation
from tests.conftest import database_url, require, session_cookie, start_daphne, stop_daphne

pytestmark = [pytest.mark.engines, pytest.mark.e2e]


@pytest.fixture
def workers(transactional_db, double, tmp_path):
    """Start workers A and B on the shared PostgreSQL test database and Redis."""
    require(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL=postgres://…)")
    require(bool(settings.REDIS_URL), "Redis (REDIS_URL=redis://…)")
    started = [start_daphne(database_url(connection.settings_dict), double, tmp_path) for _ in range(2)]
    yield started
    for server in started:
        if server.process.poll() is None:
            stop_daphne(server)


class Dashboard:
    """An admin's dashboard socket on one worker."""

    def __init__(self, socket):
        self.socket = socket
        self.frames: list[dict] = []

    async def send(self, **frame) -> None:
        await self.socket.send(json.dumps(frame))

    async def until(self, predicate, timeout: float = 15.0) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.socket.recv())
                self.frames.append(frame)
                if predicate(frame):
                    return frame


async def dashboard_on(server, user) -> Dashboard:
    cookie = await database_sync_to_async(session_cookie)(user)
    socket = await ws_connect(
        f"{server.ws_url}/ws/models/",
        origin=server.origin,
        additional_headers={"Cookie": f"sessionid={cookie}"},
    )
    dashboard = Dashboard(socket)
    await dashboard.until(lambda frame: frame["type"] == "snapshot")
    return dashboard


def operation_is(status: str, operation_id: int | None = None):
    def matches(frame: dict) -> bool:
        return (
            frame["type"] == "operation"
            and frame["operation"]["status"] == status
            and (operation_id is None or frame["operation"]["id"] == operation_id)
        )

    return matches


async def test_it_shows_a_pull_running_on_worker_a_to_an_admin_on_worker_b(workers, admin_user):
    a, b = workers
    a.double.configure(pull_seconds=2.0)
    on_a, on_b = await dashboard_on(a, admin_user), await dashboard_on(b, admin_user)

    await on_a.send(type="pull", model="llama3.2:1b")
    operation_id = (await on_a.until(lambda frame: frame["type"] == "started"))["operation"]["id"]
    final = (await on_b.until(operation_is("succeeded", operation_id)))["operation"]

    progress = [
        frame["operation"]
        for frame in on_b.frames
        if frame["type"] == "operation" and frame["operation"]["id"] == operation_id
    ]
    assert any(0 < (operation["percent"] or 0) < 100 for operation in progress), "B saw no progress"
    assert final["model"] == "llama3.2:1b" and final["percent"] == 100.0
    await on_b.until(lambda frame: frame["type"] == "models.changed")
    # A page opened on B mid-pull would get it from the snapshot (the row A keeps saving).
    await on_a.socket.close()
    await on_b.socket.close()


async def test_it_cancels_on_worker_a_a_pull_cancelled_through_worker_b(workers, admin_user):
    a, b = workers
    a.double.configure(pull_seconds=20.0)
    on_a, on_b = await dashboard_on(a, admin_user), await dashboard_on(b, admin_user)
    await on_a.send(type="pull", model="llama3.2:1b")
    operation_id = (await on_a.until(lambda frame: frame["type"] == "started"))["operation"]["id"]
    await a.double.await_request("/api/pull")
    await on_b.until(lambda frame: frame["type"] == "operation" and frame["operation"]["completed"])

    started = time.monotonic()
    await on_b.send(type="cancel", operation=operation_id)

    final = (await on_b.until(operation_is("cancelled", operation_id), timeout=5))["operation"]
    assert time.monotonic() - started < 5
    assert (await a.double.await_close("/api/pull", timeout=5))["closed_early"]  # A closed its request
    assert final["duration"] < 20
    operation = await Operation.objects.aget(pk=operation_id)
    assert operation.status == "cancelled" and operation.finished_at
    assert "llama3.2:1b" not in a.double.models
    cancel = await AuditEntry.objects.filter(action="cancel").aget()
    assert (cancel.outcome, cancel.detail) == ("ok", f"pull #{operation_id}")
    assert not [frame for frame in on_b.frames if frame["type"] == "error"]  # no "not running"
    await on_a.until(operation_is("cancelled", operation_id))  # A's admins see it end too
    await on_a.socket.close()
    await on_b.socket.close()


async def test_it_cancels_through_worker_b_with_the_plain_form(workers, admin_user):
    import httpx

    a, b = workers
    a.double.configure(pull_seconds=20.0)
    on_a = await dashboard_on(a, admin_user)
    await on_a.send(type="pull", model="llama3.2:1b")
    operation_id = (await on_a.until(lambda frame: frame["type"] == "started"))["operation"]["id"]
    await a.double.await_request("/api/pull")
    cookie = await database_sync_to_async(session_cookie)(admin_user)

    async with httpx.AsyncClient(base_url=b.url, cookies={"sessionid": cookie}) as client:
        page = await client.get("/models/")
        token = (
            client.cookies.get("csrftoken")
            or page.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        )
        response = await client.post(
            f"/models/operations/{operation_id}/cancel/",
            data={"csrfmiddlewaretoken": token},
            headers={"Referer": b.url + "/models/", "X-CSRFToken": token},
        )
        landing = await client.get(response.headers["location"])

    assert response.status_code == 302
    assert "Cancelled." in landing.text
    await on_a.until(operation_is("cancelled", operation_id), timeout=5)
    await on_a.socket.close()
