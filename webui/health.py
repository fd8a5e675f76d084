"""Health: a JSON probe for machines and a banner for people.

Both ask Ollama through one per-process cache, so a page per second from many users costs
Ollama one version request every few seconds, and a dead Ollama never slows a page down
by more than HEALTH_TIMEOUT.
"""

from __future__ import annotations

import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache

from webui import fleet
from webui.ollama import Health, gateway, parse_host

logger = logging.getLogger(__name__)

HEALTH_TTL = 5.0  # seconds a health result is reused
HEALTH_TIMEOUT = 2.0  # seconds before a silent Ollama counts as unreachable

_cache: dict[str, tuple[float, Health]] = {}


def health_cache_clear() -> None:
    _cache.clear()


async def ollama_health() -> Health:
    """Return Ollama's health, cached for HEALTH_TTL seconds per process; never raises."""
    host = parse_host(settings.OLLAMA_HOST)
    now = time.monotonic()
    cached = _cache.get(host)
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        health = await gateway().health(timeout=HEALTH_TIMEOUT)
    except Exception as error:  # a health probe must answer even when the gateway trips
        logger.warning("Ollama health check failed at %s: %r", host, error)
        health = Health(host=host, reachable=False, error="unexpected answer")
    _cache[host] = (time.monotonic() + HEALTH_TTL, health)
    return health


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("health: database check failed")
        return False
    return True


@never_cache
async def healthz(request: HttpRequest) -> JsonResponse:
    """Return the database state and Ollama's reachability; no login, no secrets.

    503 only when the database is down: without Ollama the app still serves its pages.
    Addresses, versions and error texts are for staff only: a monitor needs none of them, and
    they tell an anonymous visitor where the model servers are and what they run.
    """
    database_ok = await sync_to_async(_database_ok)()
    ollama = await ollama_health()
    if not database_ok:
        status = "error"
    elif not ollama.reachable:
        status = "degraded"
    else:
        status = "ok"
    body = {
        "status": status,
        "database": "ok" if database_ok else "error",
        "ollama": {
            "reachable": ollama.reachable,
            "version": ollama.version,
            "host": ollama.host,
            "error": ollama.error,
            "latency_ms": round(ollama.latency_ms, 1),
        },
    }
    listed = await fleet.servers()
    if len(listed) > 1:  # a fleet: every server, from the fleet's own (background) checks
        checked = await fleet.health_many(listed)
        body["servers"] = [
            {
                "name": server.name,
                "host": server.url,
                "reachable": checked[server.url].reachable,
                "version": checked[server.url].version,
                "latency_ms": round(checked[server.url].latency_ms, 1),
            }
            for server in listed
        ]
    user = await request.auser()
    if not (user.is_active and user.is_staff):
        body["ollama"] = {"reachable": ollama.reachable}
        for server in body.get("servers", []):
            for detail in ("host", "version", "latency_ms"):
                server.pop(detail)
    return JsonResponse(body, status=200 if database_ok else 503)


@never_cache
async def banner(request: HttpRequest) -> HttpResponse:
    """Return nothing while Ollama answers, else a banner saying it is unreachable."""
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponse("")
    health = await ollama_health()
    if health.reachable or (len(await fleet.servers()) > 1 and await fleet.any_reachable()):
        return HttpResponse("")  # with a fleet, one server down is the dashboard's business
    # No request: context processors would touch the database from async code.
    html = render_to_string("webui/health_banner.html", {"health": health, "is_staff": user.is_staff})
    return HttpResponse(html)


async def _channel_layer_ok() -> bool:
    """Send a message to a fresh channel and read it back (Redis or in-memory)."""
    import asyncio

    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.ping"})
        message = await asyncio.wait_for(layer.receive(channel), HEALTH_TIMEOUT)
    except Exception:
        logger.exception("health: channel layer check failed")
        return False
    return message.get("type") == "health.ping"


@never_cache
async def readyz(request: HttpRequest) -> JsonResponse:
    """Return 200 only when this worker can do its job: database, channel layer, an Ollama."""
    database_ok = await sync_to_async(_database_ok)()
    layer_ok = await _channel_layer_ok()
    ollama_ok = await fleet.any_reachable()  # one server of the fleet is enough to serve chats
    ready = database_ok and layer_ok and ollama_ok
    body = {
        "status": "ready" if ready else "not ready",
        "database": "ok" if database_ok else "error",
        "channel_layer": "ok" if layer_ok else "error",
        "ollama": {"reachable": ollama_ok},
    }
    return JsonResponse(body, status=200 if ready else 503)
