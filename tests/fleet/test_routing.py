"""Which server answers a chat: one that is healthy, has the model, and is the least busy."""

from __future__ import annotations

import asyncio
import logging

from models_admin.models import OllamaServer
from tests.fleet.conftest import streamed_chats
from webui import fleet


async def names(servers: list[fleet.Server]) -> list[str]:
    return [server.name for server in servers]


def test_it_reads_the_fleet_from_the_environment_and_the_database(db, settings, admin_user):
    settings.OLLAMA_HOSTS = ["gpu-1=10.0.0.5:11434", "10.0.0.6", "dup=http://10.0.0.5:11434"]
    OllamaServer.objects.create(name="lab", base_url="http://127.0.0.1:9", headers={"X-Key": "k"})
    OllamaServer.objects.create(name="off", base_url="http://127.0.0.1:10", enabled=False)

    listed = fleet.servers_sync()

    assert [(server.name, server.url, server.source) for server in listed] == [
        ("gpu-1", "http://10.0.0.5:11434", "settings"),
        ("10.0.0.6:11434", "http://10.0.0.6:11434", "settings"),
        ("lab", "http://127.0.0.1:9", "app"),
    ]
    assert listed[2].headers == (("X-Key", "k"),)
    assert [server.name for server in fleet.servers_all_sync()][-1] == "off"


def test_it_is_the_single_ollama_host_when_no_fleet_is_set(db, settings):
    settings.OLLAMA_HOSTS = []
    settings.OLLAMA_HOST = "gpu:11434"
    assert [(server.name, server.url) for server in fleet.servers_sync()] == [
        ("gpu:11434", "http://gpu:11434")
    ]


async def test_it_routes_a_chat_to_the_server_that_has_the_model(pair, open_chat):
    chat_socket = await open_chat()
    a, b = pair
    b.add_model("phi4:latest")

    assert await names(await fleet.route("phi4")) == ["b"]
    done = await chat_socket.chat("phi4")

    assert done["status"] == "complete"
    assert len(streamed_chats(b)) == 1 and streamed_chats(a) == []


async def test_it_sends_a_chat_to_the_least_busy_server_first(pair, open_chat):
    chat_socket = await open_chat()
    a, b = pair
    a.configure(tokens_per_second=20, reply_tokens=400)
    b.configure(tokens_per_second=20, reply_tokens=400)
    assert await names(await fleet.route("llama3.2")) == ["a", "b"]  # a tie: listed order

    await chat_socket.send(type="send", conversation=None, content="Long one", model="llama3.2")
    first = (await chat_socket.until("turn"))["reply"]["id"]
    await chat_socket.until("delta", reply=first)
    assert fleet.in_flight((await fleet.servers())[0]) == 1
    assert await names(await fleet.route("llama3.2")) == ["b", "a"]

    await chat_socket.send(type="send", conversation=None, content="Another", model="llama3.2")
    second = (await chat_socket.until("turn"))["reply"]["id"]
    await chat_socket.until("delta", reply=second)

    assert len(streamed_chats(a)) == 1 and len(streamed_chats(b)) == 1
    await chat_socket.send(type="stop", reply=first)  # the socket follows the second conversation now
    await chat_socket.send(type="stop", reply=second)
    await chat_socket.until("done", reply=second)
    async with asyncio.timeout(5):
        while any(fleet.in_flight(server) for server in await fleet.servers()):
            await asyncio.sleep(0.05)  # the first reply winds down in its own task


async def test_it_skips_a_server_that_died_with_a_warning_and_takes_it_back_later(
    second_double, third_double, open_chat, settings, caplog
):
    chat_socket = await open_chat()
    a, b = second_double, third_double  # doubles of this test's own: one of them dies
    settings.OLLAMA_HOSTS = [f"a={a.url}", f"b={b.url}"]
    assert await names(await fleet.route("llama3.2")) == ["a", "b"]  # a looks healthy…
    a.stop()  # …and dies before the chat

    with caplog.at_level(logging.WARNING, logger="webui.fleet"):
        done = await chat_socket.chat("llama3.2")

    assert done["status"] == "complete"
    assert len(streamed_chats(b)) == 1
    warning = next(record for record in caplog.records if "before the first token" in record.getMessage())
    assert "Ollama server a failed" in warning.getMessage() and "trying b" in warning.getMessage()
    assert await names(await fleet.route("llama3.2")) == ["b"]  # marked down: skipped at once

    settings.OLLAMA_HEALTH_INTERVAL = 0.1
    a.start()  # the same port again
    await asyncio.sleep(0.2)
    await fleet.health_many((await fleet.servers()), refresh=True)
    assert await names(await fleet.route("llama3.2")) == ["a", "b"]
    await chat_socket.chat("llama3.2")
    assert len(streamed_chats(a)) == 1


async def test_it_names_the_server_that_failed_mid_reply(pair, open_chat, caplog):
    chat_socket = await open_chat()
    _a, b = pair
    b.add_model("phi4:latest")
    b.configure(drop_after=5, reply_tokens=50)

    with caplog.at_level(logging.WARNING, logger="webui.fleet"):
        done = await chat_socket.chat("phi4")

    assert done["status"] == "error" and done["error_kind"] == "dropped"
    assert done["error"].startswith("Ollama server “b” failed:")
    assert any("failed on Ollama server b" in record.getMessage() for record in caplog.records)
    assert fleet.health_known((await fleet.servers())[1]).reachable is False  # until the next check


async def test_it_says_so_when_no_server_is_reachable(settings, open_chat, dead_address):
    chat_socket = await open_chat()
    settings.OLLAMA_HOSTS = [f"a={dead_address}", "b=http://127.0.0.1:9"]

    done = await chat_socket.chat("llama3.2")

    assert done["status"] == "error" and done["error_kind"] == "unreachable"
    assert "a, b" in done["error"]


async def test_it_keeps_a_single_servers_errors_as_they_were(double, settings, open_chat):
    chat_socket = await open_chat()
    settings.OLLAMA_HOST, settings.OLLAMA_HOSTS = double.url, []
    double.configure(fail_status=503)

    done = await chat_socket.chat("llama3.2")

    assert done["error_kind"] == "busy" and "Ollama server" not in done["error"]


async def test_it_counts_chats_in_flight_per_server(transactional_db, pair):
    a, _b = pair
    a.configure(tokens_per_second=50, reply_tokens=200)
    server_a = (await fleet.servers())[0]
    stream = fleet.chat_deltas(model="llama3.2", messages=[{"role": "user", "content": "hi"}])

    await anext(stream)
    assert stream.server == server_a and fleet.in_flight(server_a) == 1
    await stream.aclose()

    assert fleet.in_flight(server_a) == 0
    assert (await a.await_close("/api/chat"))["closed_early"]


async def test_it_asks_all_servers_about_their_health_at_once(
    transactional_db, settings, stalled_address, double
):
    settings.OLLAMA_HEALTH_TIMEOUT = 2.0
    settings.OLLAMA_HOSTS = [f"s1={stalled_address}", f"s2={stalled_address}/x", f"ok={double.url}"]
    loop = asyncio.get_running_loop()
    started = loop.time()

    checked = await fleet.health_many(await fleet.servers())

    assert loop.time() - started < 2 * settings.OLLAMA_HEALTH_TIMEOUT  # at once, not one after another
    assert [health.reachable for health in checked.values()] == [False, False, True]
    started = loop.time()
    await fleet.health_many(await fleet.servers())
    assert loop.time() - started < 0.1  # cached
