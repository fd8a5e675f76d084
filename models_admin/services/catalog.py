"""Installed and loaded models: list, inspect, delete, copy, unload, embed."""

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
from webui.ollama import OllamaError, gateway

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


async def models_installed(
    *, query: str = "", sort: str = "modified", descending: bool = True
) -> list[InstalledModel]:
    """Return the local models from /api/tags, filtered by `query` and sorted server-side."""
    models = [
        InstalledModel(
            name=item.model or "",
            family=(item.details.family if item.details else None) or "",
            parameter_size=(item.details.parameter_size if item.details else None) or "",
            quantization=(item.details.quantization_level if item.details else None) or "",
            size=item.size or 0,
            modified_at=item.modified_at,
            digest=item.digest or "",
        )
        for item in await gateway().tags()
    ]
    needle = query.strip().lower()
    if needle:
        models = [
            model
            for model in models
            if needle in model.name.lower()
            or needle in model.family.lower()
            or needle in model.quantization.lower()
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


async def models_loaded() -> list[LoadedModel]:
    """Return the models Ollama holds in memory now (/api/ps)."""
    return [
        LoadedModel(
            name=item.model or item.name or "",
            size=item.size or 0,
            size_vram=item.size_vram or 0,
            context_length=item.context_length,
            expires_at=item.expires_at,
        )
        for item in await gateway().ps()
    ]


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
    shown = await gateway().show(name)
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


async def model_delete(*, user_id: int | None, name: str) -> None:
    """Delete a local model; audited either way. Raises OllamaError (404 when missing)."""
    await _audited(AuditEntry.Action.DELETE, user_id=user_id, model=name, call=gateway().delete(name))
    await broadcast_models_changed()


async def model_copy(*, user_id: int | None, source: str, destination: str) -> None:
    """Copy a local model to a new name (an existing destination is overwritten by Ollama)."""
    await _audited(
        AuditEntry.Action.COPY,
        user_id=user_id,
        model=source,
        call=gateway().copy(source=source, destination=destination),
        detail=f"→ {destination}",
    )
    await broadcast_models_changed()


async def model_unload(*, user_id: int | None, name: str) -> None:
    """Ask Ollama to drop a loaded model from memory now."""
    await _audited(AuditEntry.Action.UNLOAD, user_id=user_id, model=name, call=gateway().unload(name))
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
    response = await gateway().embed(model=model, input=text)
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
                    shown = await gateway().show(model.name)
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
