"""The models dashboard with several servers: per-server state, merged lists, actions on one or all."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from django.test import Client

from models_admin.models import AuditEntry, Operation
from tests.fleet.conftest import load_model, requests_to

HTMX = {"HTTP_HX_REQUEST": "true"}


def rows_of(page: str, marker: str) -> int:
    return page.count(marker)


def test_it_shows_each_servers_health_version_models_loaded_and_chats(
    admin_client, pair, settings, dead_address
):
    _a, b = pair
    settings.OLLAMA_HOSTS = [*settings.OLLAMA_HOSTS, f"c={dead_address}"]
    b.add_model("phi4:latest")
    load_model(b)

    response = admin_client.get("/models/")

    page = response.content.decode()
    assert response.status_code == 200
    servers = page.split('id="servers-status"')[1].split("</table>")[0]
    assert servers.count('<tr data-server="') == 3
    assert servers.count('data-status="up"') == 2 and servers.count('data-status="down"') == 1
    assert "0.12.6" in servers
    assert "Ollama is unreachable at " + dead_address in servers
    b_row = servers.split('<tr data-server="b">')[1].split("</tr>")[0]
    assert "llama3.2:latest" in b_row and "1.9\xa0GB" in b_row  # loaded, with its size in VRAM
    assert "until" in b_row  # its expiry
    assert '<td data-label="Chats in flight" data-role="in-flight">0</td>' in b_row
    table = page.split('id="model-table"')[1].split('id="loaded-models"')[0]
    llama = table.split('<tr data-model="llama3.2:latest">')[1].split("</tr>")[0]
    assert '<span class="badge badge-muted">a</span> <span class="badge badge-muted">b</span>' in llama
    phi = table.split('<tr data-model="phi4:latest">')[1].split("</tr>")[0]
    assert '<span class="badge badge-muted">b</span>' in phi and ">a<" not in phi
    assert '<option value="b">b</option>' in phi and '<option value="a">a</option>' not in phi
    loaded = page.split('id="loaded-models"')[1].split("</table>")[0]
    assert 'data-model="llama3.2:latest" data-server="b"' in loaded
    assert '<select name="server"' in page.split('id="pull-form"')[1].split("</form>")[0]


def test_it_keeps_the_dashboard_of_a_single_server_as_it_was(admin_client, ollama):
    page = admin_client.get("/models/").content.decode()

    assert 'id="servers-status"' not in page
    assert '<select name="server"' not in page
    assert 'data-label="Servers"' not in page


@pytest.mark.parametrize("address", ["dead_address", "stalled_address"])
def test_it_answers_quickly_while_a_server_is_dead_or_stalled(admin_client, pair, settings, address, request):
    settings.OLLAMA_HEALTH_TIMEOUT = 1.5  # the default
    settings.OLLAMA_HOSTS = [*settings.OLLAMA_HOSTS, f"c={request.getfixturevalue(address)}"]

    started = time.monotonic()
    first = admin_client.get("/models/")
    first_took = time.monotonic() - started
    started = time.monotonic()
    again = admin_client.get("/models/")
    again_took = time.monotonic() - started

    assert first.status_code == again.status_code == 200
    assert first_took < 2.0, f"the first view took {first_took:.2f} s"
    assert again_took < 1.0, f"the next view took {again_took:.2f} s (the dead server is cached)"
    assert 'data-model="llama3.2:latest"' in again.content.decode()  # the others still list their models
    assert again.content.decode().count('data-status="down"') == 1


def test_it_answers_quickly_when_a_server_that_was_up_stalls(admin_client, pair, settings):
    import socket

    _a, b = pair
    settings.OLLAMA_HEALTH_TIMEOUT = 1.5  # the default
    admin_client.get("/models/")  # b answered: it is "up" in the cache
    settings.OLLAMA_HEALTH_INTERVAL = 0.0  # …an answer that is old at once
    b.stop()
    with socket.socket() as stalled:  # b's port now accepts connections and never answers
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        stalled.bind(("127.0.0.1", b.port))
        stalled.listen(64)
        started = time.monotonic()
        page = admin_client.get("/models/").content.decode()
        took = time.monotonic() - started

    assert took < 2.0, f"the view took {took:.2f} s"
    assert '<tr data-server="b">' in page and page.count('data-status="down"') == 1


def test_it_lists_the_models_of_every_server_once_in_the_chat_picker(user_client, pair):
    _a, b = pair
    b.add_model("phi4:latest")

    page = user_client.get("/").content.decode()

    assert page.count('value="phi4:latest"') == 1
    assert page.count('value="llama3.2:latest"') == 1
    assert "nomic-embed-text" not in page


def test_it_shows_on_which_servers_a_model_is(admin_client, pair):
    _a, b = pair
    b.add_model("phi4:latest")

    page = admin_client.get("/models/phi4:latest/").content.decode()

    assert '<span class="badge badge-muted">b</span>' in page.split('data-role="servers"')[1].split("</p>")[0]


# -- pull, delete and unload on one server or all ------------------------------------------
async def wait_for_operations(count: int) -> list[Operation]:
    async with asyncio.timeout(10):
        while True:
            operations = [operation async for operation in Operation.objects.order_by("server")]
            if len(operations) == count and all(operation.status != "running" for operation in operations):
                return operations
            await asyncio.sleep(0.05)  # the pulls run beside the test; poll the rows they write


async def test_it_pulls_on_the_chosen_server_only(
    transactional_db, pair, admin_user, async_client, drain_operations
):
    a, b = pair
    await async_client.aforce_login(admin_user)

    response = await async_client.post("/models/pull/", {"model": "llama3.2:1b", "server": "b"})

    assert response.status_code == 302
    (operation,) = await wait_for_operations(1)
    assert (operation.server, operation.status) == ("b", "succeeded")
    assert "llama3.2:1b" in b.models and "llama3.2:1b" not in a.models
    assert requests_to(a, "/api/pull") == []


async def test_it_pulls_on_every_server(transactional_db, pair, admin_user, async_client, drain_operations):
    a, b = pair
    await async_client.aforce_login(admin_user)

    response = await async_client.post(
        "/models/pull/", {"model": "llama3.2:1b", "server": "*"}, headers={"HX-Request": "true"}
    )

    assert "Pulling llama3.2:1b on a…" in response.content.decode()
    operations = await wait_for_operations(2)
    assert [(operation.server, operation.status) for operation in operations] == [
        ("a", "succeeded"),
        ("b", "succeeded"),
    ]
    assert "llama3.2:1b" in a.models and "llama3.2:1b" in b.models


async def test_it_pulls_on_every_server_from_the_socket_too(pair, admin_user, open_models_socket):
    socket = await open_models_socket(admin_user)
    await socket.receive_json_from()  # the snapshot

    await socket.send_to(text_data=json.dumps({"type": "pull", "model": "llama3.2:1b"}))
    started = [await socket.receive_json_from(5) for _ in range(2)]
    started = [frame for frame in started if frame["type"] == "started"] or started
    await wait_for_operations(2)
    await socket.send_to(text_data=json.dumps({"type": "pull", "model": "x", "server": "nowhere"}))
    while (frame := await socket.receive_json_from(5))["type"] != "error":
        pass
    await socket.disconnect()

    assert "There is no server named “nowhere”." == frame["message"]
    assert len(requests_to(pair[0], "/api/pull")) == len(requests_to(pair[1], "/api/pull")) == 1


def test_it_deletes_from_one_server_or_from_every_server_that_has_it(admin_client, pair, admin_user):
    a, b = pair

    response = admin_client.post(
        "/models/delete/", {"model": "llava:7b", "server": "a", "confirm": "1"}, follow=True
    )

    assert "Deleted llava:7b." in response.content.decode()
    assert "llava:7b" not in a.models and "llava:7b" in b.models
    assert AuditEntry.objects.get().detail == "on a"

    response = admin_client.post(
        "/models/delete/", {"model": "qwen3:0.6b", "server": "*", "confirm": "1"}, **HTMX
    )

    assert "Deleted qwen3:0.6b from a, b." in response.content.decode()
    assert "qwen3:0.6b" not in a.models and "qwen3:0.6b" not in b.models
    assert AuditEntry.objects.filter(action="delete").count() == 3


def test_it_asks_which_server_when_deleting_without_javascript(admin_client, pair):
    _a, b = pair
    b.add_model("phi4:latest")

    page = admin_client.get("/models/delete/?model=phi4:latest").content.decode()

    assert '<option value="b">b</option>' in page and '<option value="a">a</option>' not in page
    assert '<option value="*">Every server that has it</option>' in page


def test_it_reports_each_servers_failure_when_deleting_everywhere(admin_client, pair):
    a, b = pair
    admin_client.get("/models/")  # both are up and have the model…
    b.stop()  # …and b dies

    response = admin_client.post(
        "/models/delete/", {"model": "llava:7b", "server": "*", "confirm": "1"}, **HTMX
    )

    page = response.content.decode()
    assert "Deleted llava:7b from a." in page
    assert "Ollama server “b” failed: Ollama is unreachable at" in page
    assert "llava:7b" not in a.models and "llava:7b" in b.models


def test_it_unloads_on_one_server_or_on_every_server(admin_client, pair):
    a, b = pair
    load_model(a)
    load_model(b)

    admin_client.post("/models/unload/", {"model": "llama3.2:latest", "server": "b"})
    assert a.loaded_models() == ["llama3.2:latest"] and b.loaded_models() == []

    load_model(b)
    response = admin_client.post("/models/unload/", {"model": "llama3.2:latest", "server": "*"}, **HTMX)
    assert "Unloaded llama3.2:latest on a, b." in response.content.decode()
    assert a.loaded_models() == [] and b.loaded_models() == []


def test_it_refuses_the_fleet_pages_to_normal_users(user_client, pair):
    for url in ["/models/servers/", "/models/servers/add/", "/settings/"]:
        assert user_client.get(url).status_code == 403
    assert user_client.post("/models/servers/test/", {"server": "a"}).status_code == 403
    assert Client().get("/settings/").status_code == 302
