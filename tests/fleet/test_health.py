"""Readiness and health with a fleet: one reachable server is enough to serve chats."""

from __future__ import annotations

from django.test import Client


def test_it_is_ready_while_one_server_of_the_fleet_answers(db, pair, settings, dead_address):
    settings.OLLAMA_HOSTS = [f"dead={dead_address}", *settings.OLLAMA_HOSTS]

    response = Client().get("/readyz")

    assert response.status_code == 200 and response.json()["ollama"] == {"reachable": True}


def test_it_is_not_ready_when_no_server_answers(db, settings, dead_address):
    settings.OLLAMA_HOSTS = [f"a={dead_address}", "b=http://127.0.0.1:9"]

    response = Client().get("/readyz")

    assert response.status_code == 503 and response.json()["ollama"] == {"reachable": False}


def test_it_lists_every_server_in_healthz(db, pair, settings, dead_address, admin_client):
    settings.OLLAMA_HOSTS = [*settings.OLLAMA_HOSTS, f"c={dead_address}"]
    assert "host" not in Client().get("/healthz").json()["servers"][0]  # details for staff only

    body = admin_client.get("/healthz").json()

    assert [(server["name"], server["reachable"]) for server in body["servers"]] == [
        ("a", True),
        ("b", True),
        ("c", False),
    ]
    assert body["servers"][0]["version"] == "0.12.6"


def test_it_shows_no_banner_while_another_server_answers(user_client, pair, settings, dead_address):
    settings.OLLAMA_HOST = dead_address  # the first server is down…
    settings.OLLAMA_HOSTS = [f"a={dead_address}", f"b={pair[1].url}"]  # …but b answers

    assert user_client.get("/healthz/banner").content == b""
