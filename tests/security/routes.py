"""Every route the project serves, from the resolvers and the ASGI app, with its access rule.

A new page or socket fails `test_it_classifies_every_route` until it gets a rule here; the
access matrix and the browser's Content-Security-Policy sweep then cover it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from channels.routing import URLRouter
from django.urls import URLPattern, URLResolver, get_resolver

CHAT = "/ws/chat/"
MODELS = "/ws/models/"

# Who may use a route:
PUBLIC = "public"  # anybody, signed in or not
SIGNED_IN = "signed-in"  # any signed-in account, approved or not (the waiting page, log out)
APPROVED = "approved"  # approved accounts
OWNED = "owned"  # approved accounts, on their own objects only (pk is a conversation)
STAFF = "staff"  # approved staff

# Every named route: (who, the methods it answers). A new route must be added here.
ACCESS: dict[str, tuple[str, tuple[str, ...]]] = {
    "chat:index": (APPROVED, ("GET",)),
    "chat:conversation": (OWNED, ("GET",)),
    "chat:history": (OWNED, ("GET",)),
    "chat:rename": (OWNED, ("POST",)),
    "chat:delete": (OWNED, ("POST",)),
    "chat:pin": (OWNED, ("POST",)),
    "chat:archive": (OWNED, ("POST",)),
    "chat:configure": (OWNED, ("POST",)),
    "chat:set-model": (OWNED, ("POST",)),
    "chat:default-model": (APPROVED, ("POST",)),
    "chat:sidebar": (APPROVED, ("GET",)),
    "models_admin:index": (STAFF, ("GET",)),
    "models_admin:pull": (STAFF, ("POST",)),
    "models_admin:push": (STAFF, ("POST",)),
    "models_admin:create": (STAFF, ("GET", "POST")),
    "models_admin:copy": (STAFF, ("POST",)),
    "models_admin:delete": (STAFF, ("GET", "POST")),
    "models_admin:unload": (STAFF, ("POST",)),
    "models_admin:embed": (STAFF, ("GET", "POST")),
    "models_admin:cancel": (STAFF, ("POST",)),
    "models_admin:detail": (STAFF, ("GET",)),
    "models_admin:servers": (STAFF, ("GET",)),
    "models_admin:server-add": (STAFF, ("GET", "POST")),
    "models_admin:server-test": (STAFF, ("POST",)),
    "models_admin:server-edit": (STAFF, ("GET", "POST")),
    "models_admin:server-toggle": (STAFF, ("POST",)),
    "models_admin:server-delete": (STAFF, ("GET", "POST")),
    "settings": (STAFF, ("GET",)),
    "login": (PUBLIC, ("GET", "POST")),
    "logout": (SIGNED_IN, ("POST",)),
    "signup": (PUBLIC, ("GET", "POST")),
    "password_change": (SIGNED_IN, ("GET", "POST")),
    "password_change_done": (SIGNED_IN, ("GET",)),
    "users": (STAFF, ("GET",)),
    "user-action": (STAFF, ("POST",)),
    "pending": (SIGNED_IN, ("GET",)),
    "healthz": (PUBLIC, ("GET",)),
    "health-banner": (PUBLIC, ("GET",)),
    "readyz": (PUBLIC, ("GET",)),
    "set_language": (PUBLIC, ("POST",)),
    "theme-set": (PUBLIC, ("POST",)),  # remembered for signed-in users; 400 for anybody else
}

# Websocket routes: who may connect, and the close code for everybody else.
SOCKETS = {CHAT: (APPROVED, 4401), MODELS: (STAFF, 4403)}


@dataclass(frozen=True)
class Route:
    name: str
    pattern: str
    callback: Any

    def __str__(self) -> str:
        return self.name


def url_routes(resolver: URLResolver | None = None, prefix: str = "", namespace: str = "") -> list[Route]:
    """Return every URL pattern the project serves, walking included resolvers."""
    resolver = resolver or get_resolver()
    routes = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = namespace + (f"{entry.namespace}:" if entry.namespace else "")
            routes += url_routes(entry, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else f"<unnamed {prefix}{entry.pattern}>"
            routes.append(Route(name, prefix + str(entry.pattern), entry.callback))
    return routes


def socket_routes() -> list[str]:
    """Return the path of every websocket route of the ASGI application."""
    from webui.asgi import application

    app = application.application_mapping["websocket"]
    while not isinstance(app, URLRouter):
        app = getattr(app, "application", None) or app.inner
    return ["/" + str(route.pattern).strip("'") for route in app.routes]


def reachable(routes: list[Route]) -> list[Route]:
    """Drop routes shadowed by an earlier one with the same pattern (Django never reaches them)."""
    seen: set[str] = set()
    kept = []
    for route in routes:
        if route.pattern not in seen:
            seen.add(route.pattern)
            kept.append(route)
    return kept


ROUTES = reachable(url_routes())


def sample_url(
    route: Route, *, conversation: int, before: int, account: int, operation: int, server: int = 0
) -> str:
    """Return a URL of `route` with the given sample ids (a conversation, an account, …)."""
    pattern = route.pattern
    replacements = {
        "<int:pk>/<slug:action>": f"{account}/approve",
        "operations/<int:pk>": f"operations/{operation}",
        "servers/<int:pk>": f"servers/{server}",
        "<int:pk>": str(conversation),
        "<path:name>": "llama3.2:latest",
    }
    for placeholder, value in replacements.items():
        pattern = pattern.replace(placeholder, value)
    assert "<" not in pattern, f"no sample argument for {route.pattern}"
    url = "/" + pattern
    if route.name == "chat:history":
        url += f"?before={before}"
    if route.name == "models_admin:delete":
        url += "?model=llama3.2"
    return url
