"""Installed and loaded models across the fleet: list, inspect, delete, copy, unload, embed.

Lists merge every server's answer (a model two servers have is one row naming both); delete
and unload act on one chosen server or on every server that has the model; inspect, copy and
embed use one server that has the model.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from models_admin.models import AuditEntry
from models_admin.names import model_name_parse
from models_admin.services.audit import audit_record
from models_admin.services.events import broadcast_models_changed
from webui import fleet
from webui.ollama import OllamaError

SORTS = ("name", "size", "modified")
KNOWN_CAPABILITIES = ("completion", "vision", "tools", "thinking", "embedding", "insert")
EMBED_PREVIEW = 8
SHOW_CONCURRENCY = 8


@dataclass(frozen=True)
class InstalledModel:
    name: str
    family: str
    parameter_size: str
    quantization: str
    size: int
    modified_at: datetime | None
    digest: str
    servers: tuple[str, ...] = ()  # the names of the servers that have it

    @property
    def short_digest(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class LoadedModel:
    name: str
    size: int
    size_vram: int
    context_length: int | None
    expires_at: datetime | None
    server: str = ""  # the name of the server it is loaded on

    @property
    def vram_percent(self) -> int:
        return round(self.size_vram * 100 / self.size) if self.size else 0


@dataclass(frozen=True)
class ModelDetail:
    name: str
    family: str
    parameter_size: str
    quantization: str
    format: str
    parameters: str
    template: str
    system: str
    license: str
    modelfile: str
    capabilities: list[str]
    context_length: int | None
    embedding_length: int | None
    parameter_count: int | None
    modified_at: datetime | None


@dataclass(frozen=True)
class EmbedResult:
    model: str
    dimensions: int
    first_values: list[float]
    seconds: float
    inputs: int = 1
    values_shown: int = field(default=EMBED_PREVIEW)


@dataclass
class FleetModels:
    """The merged view of every server: installed models, loaded models, per-server states."""

    states: list[fleet.ServerState]
    installed: list[InstalledModel]
    loaded: list[LoadedModel]
    installed_error: OllamaError | None = None  # set when no server could list its models
    loaded_error: OllamaError | None = None

    @property
    def several(self) -> bool:
        return len(self.states) > 1


def _installed_from(states: list[fleet.ServerState]) -> list[InstalledModel]:
    merged: dict[str, InstalledModel] = {}
    for state in states:
        for item in state.models:
            name = item.model or ""
            if name in merged:
                known = merged[name]
                merged[name] = InstalledModel(
                    **{**known.__dict__, "servers": (*known.servers, state.server.name)}
                )
                continue
            merged[name] = InstalledModel(
                name=name,
                family=(item.details.family if item.details else None) or "",
                parameter_size=(item.details.parameter_size if item.details else None) or "",
                quantization=(item.details.quantization_level if item.details else None) or "",
                size=item.size or 0,
                modified_at=item.modified_at,
                digest=item.digest or "",
                servers=(state.server.name,),
            )
    return list(merged.values())


def _loaded_from(states: list[fleet.ServerState]) -> list[LoadedModel]:
    return [
        LoadedModel(
            name=item.model or item.name or "",
            size=item.size or 0,
            size_vram=item.size_vram or 0,
            context_length=item.context_length,
            expires_at=item.expires_at,
            server=state.server.name,
        )
        for state in states
        for item in state.loaded
    ]


def _all_failed(states: list[fleet.ServerState]) -> OllamaError | None:
    failures = [state.error for state in states if state.error is not None]
    if not failures or len(failures) < len(states):
        return None
    if len(states) == 1:
        return failures[0]
    return fleet.ServerFailed(failures[0], server=states[0].server)


def _filtered_sorted(
    models: list[InstalledModel], *, query: str, sort: str, descending: bool
) -> list[InstalledModel]:
    needle = query.strip().lower()
    if needle:
        models = [
            model
            for model in models
            if needle in model.name.lower()
            or needle in model.family.lower()
            or needle in model.quantization.lower()
            or any(needle in server.lower() for server in model.servers)
        ]
    if sort == "name":
        models.sort(key=lambda model: model.name.lower(), reverse=descending)
    elif sort == "size":
        models.sort(key=lambda model: model.size, reverse=descending)
    else:
        models.sort(
            key=lambda model: model.modified_at.timestamp() if model.modified_at else 0, reverse=descending
        )
    return models


async def models_fleet(
    *, query: str = "", sort: str = "modified", descending: bool = True, loaded: bool = True
) -> FleetModels:
    """Return every server's state plus the merged, filtered and sorted model lists.

    Never raises for Ollama's sake: a server that fails is reported in its state, and the
    lists say why they are empty when every server failed.
    """
    states = await fleet.overview(loaded=loaded)
    failed = _all_failed(states)
    return FleetModels(
        states=states,
        installed=_filtered_sorted(_installed_from(states), query=query, sort=sort, descending=descending),
        loaded=_loaded_from(states),
        installed_error=failed,
        loaded_error=failed if loaded else None,
    )


async def models_installed(
    *, query: str = "", sort: str = "modified", descending: bool = True
) -> list[InstalledModel]:
    """Return the models of every server (merged), filtered by `query` and sorted server-side.

    Raises OllamaError when no server could answer.
    """
    merged = await models_fleet(query=query, sort=sort, descending=descending, loaded=False)
    if merged.installed_error is not None:
        raise merged.installed_error
    return merged.installed


async def models_loaded() -> list[LoadedModel]:
    """Return the models the servers hold in memory now (/api/ps), with the server of each."""
    states = await fleet.overview(models=False)
    failed = _all_failed(states)
    if failed is not None:
        raise failed
    return _loaded_from(states)


_SYSTEM_BLOCK = re.compile(r'^SYSTEM[ \t]+"""(.*?)"""', re.IGNORECASE | re.MULTILINE | re.DOTALL)
_SYSTEM_LINE = re.compile(r"^SYSTEM[ \t]+(.+)$", re.IGNORECASE | re.MULTILINE)


def _system_from_modelfile(modelfile: str) -> str:
    """Return the SYSTEM prompt of a modelfile (the client's ShowResponse drops `system`)."""
    if match := _SYSTEM_BLOCK.search(modelfile):
        return match.group(1).strip()
    if match := _SYSTEM_LINE.search(modelfile):
        return match.group(1).strip().strip('"')
    return ""


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def model_inspect(*, name: str) -> ModelDetail:
    """Return what /api/show knows about one model; raises OllamaError (404 when missing)."""
    shown = await (await fleet.primary(name)).gateway().show(name)
    info: dict[str, Any] = dict(shown.modelinfo or {})
    architecture = info.get("general.architecture") or ""
    details = shown.details
    license_text = shown.license or ""
    if isinstance(license_text, list):  # some servers send a list of licenses
        license_text = "\n\n".join(str(part) for part in license_text)
    return ModelDetail(
        name=name,
        family=(details.family if details else None) or architecture,
        parameter_size=(details.parameter_size if details else None) or "",
        quantization=(details.quantization_level if details else None) or "",
        format=(details.format if details else None) or "",
        parameters=shown.parameters or "",
        template=shown.template or "",
        system=_system_from_modelfile(shown.modelfile or ""),
        license=license_text,
        modelfile=shown.modelfile or "",
        capabilities=list(shown.capabilities or []),
        context_length=_int_or_none(info.get(f"{architecture}.context_length")),
        embedding_length=_int_or_none(info.get(f"{architecture}.embedding_length")),
        parameter_count=_int_or_none(info.get("general.parameter_count")),
        modified_at=shown.modified_at,
    )


@dataclass(frozen=True)
class ServerOutcome:
    """How one server took a delete or an unload."""

    server: str
    error: OllamaError | None = None


async def _on_each(
    action: str, *, user_id: int | None, model: str, servers: list[fleet.Server], call
) -> list[ServerOutcome]:
    """Run `call(server)` on each server (concurrently), audited one entry per server.

    With one target its error is raised; with several, each outcome is returned (errors
    name their server).
    """
    if not servers:
        raise OllamaError(f"model '{model}' not found on any server", status=404, kind="not_found")
    several = len(await fleet.servers()) > 1

    async def one(server: fleet.Server) -> ServerOutcome:
        where = f" on {server.name}" if several else ""
        try:
            await call(server)
        except OllamaError as error:
            await audit_record(
                user_id=user_id, action=action, model=model, ok=False, detail=f"{error}{where}"
            )
            return ServerOutcome(server.name, fleet.ServerFailed(error, server=server) if several else error)
        await audit_record(user_id=user_id, action=action, model=model, ok=True, detail=where.strip())
        return ServerOutcome(server.name)

    outcomes = list(await asyncio.gather(*(one(server) for server in servers)))
    fleet.models_changed()
    if any(outcome.error is None for outcome in outcomes):
        await broadcast_models_changed()
    if len(outcomes) == 1 and outcomes[0].error is not None:
        raise outcomes[0].error
    return outcomes


async def model_delete(*, user_id: int | None, name: str, server: str = "") -> list[ServerOutcome]:
    """Delete a model from one server (by name) or from every server that has it (ALL or "").

    Audited per server. Raises OllamaError (404 when missing) when the only target fails.
    """
    targets = await fleet.targets(server, having=name)
    return await _on_each(
        AuditEntry.Action.DELETE,
        user_id=user_id,
        model=name,
        servers=targets,
        call=lambda target: target.gateway().delete(name),
    )


async def model_unload(*, user_id: int | None, name: str, server: str = "") -> list[ServerOutcome]:
    """Drop a loaded model from memory now, on one server (by name) or on every server that has it."""
    targets = await fleet.targets(server, having=name)
    return await _on_each(
        AuditEntry.Action.UNLOAD,
        user_id=user_id,
        model=name,
        servers=targets,
        call=lambda target: target.gateway().unload(name),
    )


async def model_copy(*, user_id: int | None, source: str, destination: str) -> None:
    """Copy a local model to a new name on a server that has it (Ollama overwrites a destination)."""
    server = await fleet.primary(source)
    await _audited(
        AuditEntry.Action.COPY,
        user_id=user_id,
        model=source,
        call=server.gateway().copy(source=source, destination=destination),
        detail=f"→ {destination}",
    )
    fleet.models_changed()
    await broadcast_models_changed()


async def _audited(action: str, *, user_id: int | None, model: str, call, detail: str = "") -> None:
    try:
        await call
    except OllamaError as error:
        await audit_record(user_id=user_id, action=action, model=model, ok=False, detail=str(error))
        raise
    await audit_record(user_id=user_id, action=action, model=model, ok=True, detail=detail)


async def model_embed(*, model: str, text: str) -> EmbedResult:
    """Embed `text` with `model` and return the vector's size, its first values and the time taken."""
    started = time.perf_counter()
    response = await (await fleet.primary(model)).gateway().embed(model=model, input=text)
    seconds = time.perf_counter() - started
    vector = list(response.embeddings[0]) if response.embeddings else []
    return EmbedResult(
        model=model,
        dimensions=len(vector),
        first_values=[float(value) for value in vector[:EMBED_PREVIEW]],
        seconds=seconds,
    )


# Capabilities per (name, digest): /api/show is asked once per model version, not per page view.
_capabilities_cache: dict[tuple[str, str], list[str]] = {}


async def models_with_capability(capability: str) -> list[str]:
    """Return the names of installed models that declare `capability` (e.g. "embedding")."""
    installed = await models_installed(sort="name", descending=False)
    limiter = asyncio.Semaphore(SHOW_CONCURRENCY)

    async def capabilities(model: InstalledModel) -> list[str]:
        key = (model.name, model.digest)
        if key not in _capabilities_cache:
            async with limiter:
                try:
                    shown = await (await fleet.primary(model.name)).gateway().show(model.name)
                except OllamaError:
                    return []
            if len(_capabilities_cache) > 1000:
                _capabilities_cache.clear()
            _capabilities_cache[key] = list(shown.capabilities or [])
        return _capabilities_cache[key]

    found = await asyncio.gather(*(capabilities(model) for model in installed))
    return [model.name for model, caps in zip(installed, found, strict=True) if capability in caps]


def model_display_name(raw: str) -> str:
    """Return the canonical display form of a valid name (`llama3.2` → `llama3.2:latest`)."""
    return model_name_parse(raw).display
