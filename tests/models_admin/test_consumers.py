"""The dashboard socket in-process (WebsocketCommunicator on webui.asgi) against the Ollama double."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from models_admin.models import AuditEntry, Operation
from models_admin.services.operations import FRAME_INTERVAL
from tests.conftest import free_port, make_user

FORBIDDEN = 4403


@database_sync_to_async
def operation_row(operation_id: int) -> Operation:
    return Operation.objects.get(pk=operation_id)


@database_sync_to_async
def audit_rows() -> list[tuple[str, str, str, str]]:
    return list(AuditEntry.objects.order_by("id").values_list("action", "model", "outcome", "detail"))


def pulls_requested(double) -> list[dict]:
    return [entry for entry in double.requests if entry["path"] == "/api/pull"]


# -- who may connect -----------------------------------------------------------------------
async def test_it_accepts_an_admin_and_sends_a_snapshot(connect, admin_user):
    socket = await connect(admin_user)

    assert socket.connected
    assert await socket.receive() == {"type": "snapshot", "operations": []}


async def test_it_refuses_anonymous_sockets(connect):
    socket = await connect(None)
    assert (socket.connected, socket.close_code) == (False, FORBIDDEN)


async def test_it_refuses_normal_users(connect, user):
    socket = await connect(user)
    assert (socket.connected, socket.close_code) == (False, FORBIDDEN)


async def test_it_refuses_pending_users_even_staff(connect, pending_user):
    pending_user.is_staff = True
    await pending_user.asave()
    socket = await connect(pending_user)
    assert (socket.connected, socket.close_code) == (False, FORBIDDEN)


async def test_it_refuses_sockets_from_foreign_pages(connect, admin_user):
    socket = await connect(admin_user, origin="http://evil.example")
    assert not socket.connected


async def test_it_stops_obeying_an_admin_who_lost_the_right(connect, admin_user, ollama):
    socket = await connect(admin_user)
    await socket.receive()
    await get_user_model().objects.filter(pk=admin_user.pk).aupdate(is_staff=False)

    await socket.send(type="pull", model="llama3.2:1b")

    frame = await socket.receive()
    assert frame["type"] == "error" and frame["request"] == "pull"
    assert (await socket.communicator.receive_output(2))["code"] == FORBIDDEN
    assert pulls_requested(ollama) == []


# -- frames the consumer refuses -----------------------------------------------------------
@pytest.mark.parametrize(
    ("frame", "says"),
    [
        ({"type": "pull", "model": "../../x"}, "is not a valid"),
        ({"type": "pull", "model": "a b"}, "cannot contain spaces"),
        ({"type": "pull", "model": ""}, "Enter a model name"),
        ({"type": "pull", "model": "x" * 10_000}, "too long"),
        ({"type": "pull", "model": 42}, "Enter a model name"),
        ({"type": "push", "model": "../x"}, "is not a valid"),
        ({"type": "cancel", "operation": "1"}, "Send its id"),
        ({"type": "cancel", "operation": 999}, "not running"),
        ({"type": "explode"}, "Unknown request"),
    ],
)
async def test_it_answers_bad_requests_with_an_error_frame(connect, admin_user, ollama, frame, says):
    socket = await connect(admin_user)
    await socket.receive()

    await socket.send(**frame)

    answer = await socket.until("error")
    assert says in answer["message"]
    assert pulls_requested(ollama) == []
    await socket.send(type="snapshot")  # the socket is still usable
    assert (await socket.until("snapshot"))["operations"] == []


async def test_it_answers_unreadable_frames(connect, admin_user):
    socket = await connect(admin_user)
    await socket.receive()

    await socket.send_raw("{not json")
    assert (await socket.until("error"))["message"] == "That message could not be read."
    await socket.send_raw("[1, 2]")
    assert (await socket.until("error"))["message"] == "That message could not be read."


# -- pull ----------------------------------------------------------------------------------
async def test_it_streams_pull_progress_to_success(connect, admin_user, ollama):
    ollama.configure(pull_seconds=1.0)
    socket = await connect(admin_user)
    await socket.receive()

    await socket.send(type="pull", model="llama3.2:1b")

    started = await socket.until("started")
    assert started["joined"] is False and started["operation"]["status"] == "running"
    operation_id = started["operation"]["id"]
    final = await socket.until_operation("succeeded")
    assert final["id"] == operation_id and final["model"] == "llama3.2:1b" and final["user"] == "ada"
    assert final["status_text"] == "success"
    assert final["percent"] == 100.0 and final["completed"] == final["total"] > 1_000_000_000
    big = max(final["layers"], key=lambda layer: layer["total"])
    assert big["status"].startswith("pulling ") and big["short"] == big["digest"][7:19]
    assert big["percent"] == 100.0
    await socket.until("models.changed")

    running = [frame for frame in socket.operations(operation_id) if frame["status"] == "running"]
    assert any(0 < (frame["percent"] or 0) < 100 for frame in running), "no intermediate progress was sent"
    assert any(frame["speed"] for frame in running), "no speed was measured"
    # Throttled: the double sent more lines than the socket got frames (at most ~5 a second).
    duration = final["duration"]
    assert len(running) <= duration / FRAME_INTERVAL + 3

    row = await operation_row(operation_id)
    assert row.status == "succeeded" and row.finished_at and row.duration.total_seconds() > 0.5
    assert row.progress["percent"] == 100.0
    assert "llama3.2:1b" in ollama.models
    assert len(pulls_requested(ollama)) == 1
    assert [row[:3] for row in await audit_rows()] == [
        ("pull", "llama3.2:1b", "ok"),
        ("pull", "llama3.2:1b", "ok"),
    ]


async def test_it_shows_every_admin_the_progress(connect, admin_user, ollama):
    other_admin = await database_sync_to_async(make_user)("grace", staff=True)
    ollama.configure(pull_seconds=0.5)
    starter, watcher = await connect(admin_user), await connect(other_admin)
    await starter.receive()
    await watcher.receive()

    await starter.send(type="pull", model="llama3.2:1b")

    assert (await watcher.until_operation("succeeded"))["user"] == "ada"
    await watcher.until("models.changed")


async def test_it_joins_a_pull_already_running_instead_of_asking_twice(connect, admin_user, ollama):
    other_admin = await database_sync_to_async(make_user)("grace", staff=True)
    ollama.configure(pull_seconds=1.0)
    first, second = await connect(admin_user), await connect(other_admin)
    await first.receive()
    await second.receive()

    await first.send(type="pull", model="llama3.2:1b")
    started = await first.until("started")
    await second.send(type="pull", model="library/LLAMA3.2:1b")
    joined = await second.until("started")

    assert joined["joined"] is True and joined["operation"]["id"] == started["operation"]["id"]
    await first.until_operation("succeeded")
    assert len(pulls_requested(ollama)) == 1
    assert await Operation.objects.acount() == 1
    details = [row[3] for row in await audit_rows()]
    assert f"joined #{started['operation']['id']}" in details


async def test_it_joins_when_two_requests_arrive_at_once(connect, admin_user, ollama):
    from models_admin.services import model_pull

    ollama.configure(pull_seconds=0.5)
    (first, first_joined), (second, second_joined) = await asyncio.gather(
        model_pull(user_id=admin_user.pk, username="ada", name="llama3.2:1b"),
        model_pull(user_id=admin_user.pk, username="ada", name="llama3.2:1b"),
    )

    assert first["id"] == second["id"]
    assert sorted([first_joined, second_joined]) == [False, True]
    await ollama.await_request("/api/pull")
    assert len(pulls_requested(ollama)) == 1


async def test_it_cancels_a_pull_and_closes_the_request_to_ollama(connect, admin_user, ollama):
    ollama.configure(pull_seconds=10.0)
    socket = await connect(admin_user)
    await socket.receive()
    await socket.send(type="pull", model="llama3.2:1b")
    operation_id = (await socket.until("started"))["operation"]["id"]
    await ollama.await_request("/api/pull")

    await socket.send(type="cancel", operation=operation_id)

    await ollama.await_close("/api/pull")
    final = await socket.until_operation("cancelled")
    assert final["id"] == operation_id and final["duration"] < 10
    row = await operation_row(operation_id)
    assert row.status == "cancelled" and row.finished_at
    assert "llama3.2:1b" not in ollama.models
    assert ("cancel", "llama3.2:1b", "ok", f"pull #{operation_id}") in await audit_rows()


async def test_it_gives_a_socket_opened_mid_pull_the_current_progress(connect, admin_user, ollama):
    ollama.configure(pull_seconds=3.0)
    first = await connect(admin_user)
    await first.receive()
    await first.send(type="pull", model="llama3.2:1b")
    while True:  # wait until some bytes are done
        operation = (await first.until("operation"))["operation"]
        if operation["completed"]:
            break

    second = await connect(admin_user)  # the page was reloaded
    snapshot = await second.until("snapshot")

    (current,) = snapshot["operations"]
    assert current["id"] == operation["id"] and current["status"] == "running"
    assert current["completed"] >= operation["completed"] > 0
    assert current["layers"]
    assert (await second.until_operation("succeeded"))["id"] == operation["id"]


# -- pull failures -------------------------------------------------------------------------
async def pull_until_failed(connect, admin_user, model: str = "llama3.2:1b") -> dict:
    socket = await connect(admin_user)
    await socket.receive()
    await socket.send(type="pull", model=model)
    await socket.until("started")
    return await socket.until_operation("failed")


async def test_it_reports_an_unknown_model_plainly(connect, admin_user, ollama):
    final = await pull_until_failed(connect, admin_user, model="no-such-model")

    assert "pull model manifest: file does not exist" in final["error"]
    row = await operation_row(final["id"])
    assert row.status == "failed" and "file does not exist" in row.error
    assert ("pull", "no-such-model", "error") in [row[:3] for row in await audit_rows()]


async def test_it_reports_a_failure_during_the_download(connect, admin_user, ollama):
    ollama.configure(pull_fail_after=3)
    final = await pull_until_failed(connect, admin_user)
    assert "max retries exceeded: unexpected EOF" in final["error"]


async def test_it_reports_an_ollama_500(connect, admin_user, ollama):
    ollama.configure(fail_status=500, fail_paths=["/api/pull"], fail_message="registry exploded")
    final = await pull_until_failed(connect, admin_user)
    assert final["error"] == "Ollama reported an error: registry exploded"


async def test_it_reports_an_unreachable_ollama(connect, admin_user, settings):
    settings.OLLAMA_HOST = f"http://127.0.0.1:{free_port()}"
    final = await pull_until_failed(connect, admin_user)
    assert "Ollama is unreachable" in final["error"]


# -- push and create -----------------------------------------------------------------------
async def test_it_pushes_with_progress(connect, admin_user, ollama):
    ollama.add_model("myuser/mymodel:v1")
    socket = await connect(admin_user)
    await socket.receive()

    await socket.send(type="push", model="myuser/mymodel:v1")

    final = await socket.until_operation("succeeded")
    assert final["kind"] == "push" and final["layers"]
    assert [entry["path"] for entry in ollama.requests].count("/api/push") == 1


async def test_it_reports_a_push_of_a_missing_model_plainly(connect, admin_user, ollama):
    socket = await connect(admin_user)
    await socket.receive()

    await socket.send(type="push", model="myuser/ghost:v1")

    final = await socket.until_operation("failed")
    assert "no such file or directory" in final["error"]


async def test_it_creates_a_model_from_a_base_with_a_system_prompt(connect, admin_user, ollama):
    from models_admin.services import model_create

    socket = await connect(admin_user)
    await socket.receive()

    snapshot, joined = await model_create(
        user_id=admin_user.pk,
        username="ada",
        name="example",
        base="llama3.2:latest",
        system="You are Mario from Super Mario Bros.",
        parameters={"temperature": 0.7, "num_ctx": 4096},
    )

    assert not joined
    final = await socket.until_operation("succeeded")
    assert (
        final["id"] == snapshot["id"] and final["kind"] == "create" and final["source"] == "llama3.2:latest"
    )
    body = next(entry for entry in ollama.requests if entry["path"] == "/api/create")["body"]
    assert body["from"] == "llama3.2:latest" and body["model"] == "example"
    assert body["system"] == "You are Mario from Super Mario Bros."
    assert body["parameters"] == {"temperature": 0.7, "num_ctx": 4096}
    assert ollama.models["example:latest"]["system"] == "You are Mario from Super Mario Bros."


# -- the plain-form path ---------------------------------------------------------------------
async def test_it_starts_a_pull_from_the_plain_form(
    transactional_db, ollama, admin_user, async_client, drain
):
    await async_client.aforce_login(admin_user)
    ollama.configure(pull_seconds=0.3)

    response = await async_client.post("/models/pull/", {"model": "llama3.2:1b"})

    assert response.status_code == 302 and response["Location"] == "/models/#operations"
    operation = await Operation.objects.aget()
    async with asyncio.timeout(10):
        while operation.status == "running":
            await asyncio.sleep(0.05)  # the task runs beside the test; poll the row it writes
            await operation.arefresh_from_db()
    assert operation.status == "succeeded"
    assert "llama3.2:1b" in ollama.models


async def test_it_cancels_from_the_plain_form(transactional_db, ollama, admin_user, async_client, drain):
    await async_client.aforce_login(admin_user)
    ollama.configure(pull_seconds=10)
    await async_client.post("/models/pull/", {"model": "llama3.2:1b"})
    operation = await Operation.objects.aget()
    await ollama.await_request("/api/pull")

    response = await async_client.post(f"/models/operations/{operation.pk}/cancel/")

    assert response.status_code == 302
    await ollama.await_close("/api/pull")
    await operation.arefresh_from_db()
    assert operation.status == "cancelled"


# -- the database during an operation ------------------------------------------------------
@database_sync_to_async
def count_operation_updates(action: str) -> int:
    """Install (start), read, or remove (stop) a SQLite trigger counting UPDATEs of operations."""
    from django.db import connection

    with connection.cursor() as cursor:
        if action == "start":
            cursor.execute("CREATE TABLE IF NOT EXISTS op_updates (n INTEGER)")
            cursor.execute("DELETE FROM op_updates")
            cursor.execute("INSERT INTO op_updates VALUES (0)")
            cursor.execute(
                "CREATE TRIGGER IF NOT EXISTS op_updates_count AFTER UPDATE ON models_admin_operation "
                "BEGIN UPDATE op_updates SET n = n + 1; END"
            )
            return 0
        cursor.execute("SELECT n FROM op_updates")
        count = cursor.fetchone()[0]
        if action == "stop":
            cursor.execute("DROP TRIGGER IF EXISTS op_updates_count")
            cursor.execute("DROP TABLE IF EXISTS op_updates")
        return count


@pytest.mark.sqlite  # counts writes with a SQLite trigger: the SQLite pass of make test runs it
async def test_it_saves_progress_every_few_seconds_not_per_line(connect, admin_user, ollama, settings):
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3", (
        "run with -m sqlite on SQLite"
    )
    ollama.configure(pull_seconds=3.0)
    socket = await connect(admin_user)
    await socket.receive()
    await count_operation_updates("start")
    try:
        await socket.send(type="pull", model="llama3.2:1b")
        operation_id = (await socket.until("started"))["operation"]["id"]
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < 2.6:
            await socket.until("operation")
        saved_mid_pull = (await operation_row(operation_id)).progress
        await socket.until_operation("succeeded")
        updates = await count_operation_updates("read")
    finally:
        await count_operation_updates("stop")

    assert len(pulls_requested(ollama)) == 1
    assert saved_mid_pull and saved_mid_pull["status"] == "running" and saved_mid_pull["layers"]
    # ~12 progress lines over 3 s: one heartbeat save per 2 s plus the final one.
    assert 1 <= updates <= 3


async def test_it_fails_a_running_operation_whose_process_died(connect, admin_user):
    from datetime import timedelta

    from django.utils import timezone

    orphan = await Operation.objects.acreate(kind="pull", model="llama3.2", user=admin_user)
    await Operation.objects.filter(pk=orphan.pk).aupdate(updated_at=timezone.now() - timedelta(minutes=1))

    socket = await connect(admin_user)

    assert (await socket.until("snapshot"))["operations"] == []
    orphan = await operation_row(orphan.pk)
    assert orphan.status == "failed" and orphan.error == "server restarted"
