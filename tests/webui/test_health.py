"""Health: /healthz for machines, /healthz/banner for people; fast and safe when Ollama is down."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.test import Client

from tests.conftest import free_port
from webui import health


@pytest.fixture
def dead_ollama(settings) -> str:
    """Point the app at a port where nothing listens; return that address."""
    settings.OLLAMA_HOST = f"http://127.0.0.1:{free_port()}"
    return settings.OLLAMA_HOST


def version_requests(double) -> int:
    return sum(1 for request in double.requests if request["path"] == "/api/version")


def test_it_reports_a_reachable_ollama(db, ollama, admin_client):
    response = admin_client.get("/healthz")

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["ollama"]["reachable"] is True
    assert body["ollama"]["version"] == "0.12.6"
    assert body["ollama"]["host"] == ollama.url
    assert response["Cache-Control"].startswith("max-age=0")


def test_it_reports_an_unreachable_ollama_quickly(db, dead_ollama, admin_client):
    started = time.monotonic()
    response = admin_client.get("/healthz")
    elapsed = time.monotonic() - started

    body = response.json()
    assert response.status_code == 200  # the app still serves pages
    assert body["status"] == "degraded"
    assert body["ollama"]["reachable"] is False
    assert body["ollama"]["host"] == dead_ollama
    assert elapsed < health.HEALTH_TIMEOUT


def test_it_tells_anonymous_monitors_the_state_only(db, ollama):
    body = Client().get("/healthz").json()

    assert body == {"status": "ok", "database": "ok", "ollama": {"reachable": True}}


def test_it_never_reveals_secrets(db, ollama, settings):
    settings.OLLAMA_HEADERS = {"Authorization": "Bearer top-secret-token"}

    text = Client().get("/healthz").content.decode()

    assert "top-secret-token" not in text
    assert settings.SECRET_KEY not in text


def test_it_stays_async():
    assert asyncio.iscoroutinefunction(health.healthz)
    assert asyncio.iscoroutinefunction(health.banner)


def test_it_asks_ollama_once_per_few_seconds(db, ollama):
    client = Client()
    for _ in range(3):
        client.get("/healthz")

    assert version_requests(ollama) == 1


def test_it_asks_again_when_the_cached_answer_is_old(db, ollama, monkeypatch):
    client = Client()
    client.get("/healthz")
    monkeypatch.setattr(health, "HEALTH_TTL", 0.0)
    health.health_cache_clear()
    client.get("/healthz")

    assert version_requests(ollama) == 2


def test_it_shows_no_banner_while_ollama_answers(user_client, ollama):
    response = user_client.get("/healthz/banner")

    assert response.status_code == 200
    assert response.content == b""


def test_it_shows_a_banner_when_ollama_is_unreachable(user_client, dead_ollama):
    html = user_client.get("/healthz/banner").content.decode()

    assert 'class="banner banner-error" role="alert"' in html
    assert f"Ollama is unreachable at {dead_ollama}." in html
    assert "OLLAMA_HOST" not in html  # the hint is for admins


def test_it_gives_admins_a_hint_in_the_banner(admin_client, dead_ollama):
    html = admin_client.get("/healthz/banner").content.decode()

    assert "OLLAMA_HOST" in html
    assert "ollama serve" in html


def test_it_shows_anonymous_visitors_no_banner(db, dead_ollama):
    assert Client().get("/healthz/banner").content == b""


def test_it_serves_pages_while_ollama_is_down(admin_client, dead_ollama):
    assert admin_client.get("/users/").status_code == 200
    assert admin_client.get("/accounts/password/").status_code == 200


def test_it_is_ready_with_database_channel_layer_and_ollama(db, ollama, client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": "ok",
        "channel_layer": "ok",
        "ollama": {"reachable": True},
    }


def test_it_is_not_ready_without_ollama(db, dead_ollama, client):
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["ollama"] == {"reachable": False}
