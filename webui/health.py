"""Health: a JSON probe for machines and a banner for people."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse

from webui.ollama import gateway


async def healthz(request: HttpRequest) -> JsonResponse:
    """Return the database state and Ollama's reachability and version; no login, no secrets."""
    from asgiref.sync import sync_to_async

    def database_ok() -> bool:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except Exception:
            return False

    db_ok = await sync_to_async(database_ok)()
    ollama = await gateway().health()
    body = {
        "status": "ok" if db_ok else "error",
        "database": "ok" if db_ok else "error",
        "ollama": {"reachable": ollama.reachable, "version": ollama.version, "host": ollama.host},
    }
    return JsonResponse(body, status=200 if db_ok else 503)


async def banner(request: HttpRequest):
    from django.http import HttpResponse

    return HttpResponse("")
