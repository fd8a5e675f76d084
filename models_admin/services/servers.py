"""The fleet's servers as admins see and edit them: list with status, add, edit, disable, delete, test.

Servers from the environment (OLLAMA_HOSTS / OLLAMA_HOST) are listed but not editable here;
servers added in the app are `OllamaServer` rows. Every change is audited and makes this
process forget its cached list (other processes pick it up within fleet.SERVERS_TTL).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from models_admin.models import AuditEntry, OllamaServer
from models_admin.services.audit import audit_record
from models_admin.services.events import broadcast_models_changed
from webui import fleet
from webui.ollama import Gateway, Health


@dataclass
class ServerRow:
    """One line of the servers page."""

    server: fleet.Server
    state: fleet.ServerState | None  # None when disabled (not asked)

    @property
    def editable(self) -> bool:
        return self.server.source == "app"


async def servers_listing() -> list[ServerRow]:
    """Return every server (disabled ones too) with the state of the enabled ones."""
    everything = await fleet.servers_all()
    states = {state.server.url: state for state in await fleet.overview()}
    return [ServerRow(server=server, state=states.get(server.url)) for server in everything]


async def _changed(*, user_id: int | None, server: str, detail: str) -> None:
    fleet.forget_servers()
    fleet.models_changed()
    await audit_record(user_id=user_id, action=AuditEntry.Action.SERVER, model=server, ok=True, detail=detail)
    await broadcast_models_changed()


async def server_create(
    *, user_id: int | None, name: str, base_url: str, headers: dict[str, str], enabled: bool = True
) -> OllamaServer:
    """Add a server to the fleet."""
    server = await OllamaServer.objects.acreate(
        name=name, base_url=base_url, headers=headers, enabled=enabled, created_by_id=user_id
    )
    await _changed(user_id=user_id, server=name, detail=f"added {base_url}")
    return server


async def server_update(
    *,
    user_id: int | None,
    server: OllamaServer,
    name: str,
    base_url: str,
    headers: dict[str, str],
    enabled: bool,
) -> OllamaServer:
    """Change a server's name, address, headers or enabled state."""
    server.name, server.base_url, server.headers, server.enabled = name, base_url, headers, enabled
    await server.asave()
    await _changed(user_id=user_id, server=name, detail=f"edited ({base_url})")
    return server


async def server_set_enabled(*, user_id: int | None, server: OllamaServer, enabled: bool) -> None:
    """Enable a server, or disable it: no chat, pull, delete or unload goes to it any more."""
    server.enabled = enabled
    await server.asave(update_fields=["enabled", "updated_at"])
    await _changed(user_id=user_id, server=server.name, detail="enabled" if enabled else "disabled")


async def server_delete(*, user_id: int | None, server: OllamaServer) -> None:
    """Remove a server from the fleet (its models stay on it)."""
    name = server.name
    await server.adelete()
    await _changed(user_id=user_id, server=name, detail="deleted")


async def server_test(*, url: str, headers: dict[str, str] | None, timeout: float = 5.0) -> Health:
    """Ask a server for its version, through a client of its own; return version and latency or the error."""
    probe = Gateway(url, headers=headers if headers is not None else None)
    try:
        return await probe.health(timeout=timeout)
    finally:
        await asyncio.shield(probe.close())
