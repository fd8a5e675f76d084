"""The fleet of Ollama servers: the only place that decides which server does what.

Servers come from the environment (`OLLAMA_HOSTS`, else the single `OLLAMA_HOST`) and from
the database (`OllamaServer`, edited by admins under /models/servers/); the list is cached for
a few seconds. Each server's health (`/api/version`, with a short timeout, all servers at
once) is cached for `OLLAMA_HEALTH_INTERVAL` seconds: a stale answer is served while a fresh
check runs in the background, so a dead or stalled server never holds up a page for longer
than one health timeout, and only the first time.

A chat goes to a healthy server that has the model, least busy first (chat streams this
process is running there). A server failing before the first token is skipped with a warning
and marked down until its next health check passes; after the first token the reply fails
with an error naming the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.utils.translation import gettext as _

from webui.ollama import ChatResponse, Gateway, Health, OllamaError, gateway, parse_host

logger = logging.getLogger(__name__)

ALL = "*"  # "every server" in forms and socket frames
SERVERS_TTL = 5.0  # seconds the list of servers is reused
LIST_TIMEOUT = 5.0  # seconds for /api/tags and /api/ps of a server that passed its health check
STALE_GRACE = 0.25  # seconds a page waits for a re-check before using the last known health
DOWN_KINDS = frozenset({"unreachable", "timeout", "dropped"})  # the server itself is in trouble
FAILOVER_KINDS = DOWN_KINDS | {"busy", "not_found"}  # another server may well do better


@dataclass(frozen=True)
class Server:
    """One Ollama server of the fleet."""

    name: str
    url: str
    source: str = "settings"  # settings (the environment) | app (added by an admin)
    headers: tuple[tuple[str, str], ...] = ()
    enabled: bool = True
    pk: int | None = None

    def gateway(self) -> Gateway:
        """Return the pooled gateway to this server (OLLAMA_HEADERS for environment servers)."""
        if self.source == "app":
            return gateway(self.url, headers=dict(self.headers))
        return gateway(self.url)


class ServerFailed(OllamaError):
    """An OllamaError of one server of several: the message people see names the server."""

    def __init__(self, error: OllamaError, *, server: Server):
        super().__init__(error.message, status=error.status, kind=error.kind, host=error.host)
        self.server = server

    @property
    def user_message(self) -> str:
        detail = super().user_message
        return _("Ollama server “%(server)s” failed: %(detail)s") % {
            "server": self.server.name,
            "detail": detail,
        }


# -- the list of servers ---------------------------------------------------------------------
def server_name_from_url(url: str) -> str:
    """Return `host:port[/path]` of a base URL, the name of a server the environment defines."""
    return url.split("://", 1)[-1].rstrip("/")


def settings_servers() -> list[Server]:
    """Return the servers of OLLAMA_HOSTS (`[name=]host` entries), else of OLLAMA_HOST."""
    entries = list(getattr(settings, "OLLAMA_HOSTS", None) or []) or [settings.OLLAMA_HOST or ""]
    servers: list[Server] = []
    seen: set[str] = set()
    for entry in entries:
        name, raw = "", entry.strip()
        if "=" in raw:
            name, raw = (part.strip() for part in raw.split("=", 1))
        url = parse_host(raw or None)
        if url in seen:
            continue
        seen.add(url)
        servers.append(Server(name=name or server_name_from_url(url), url=url))
    return servers


def _database_servers() -> list[Server]:
    from models_admin.models import OllamaServer

    try:
        rows = list(OllamaServer.objects.order_by("name", "pk"))
    except DatabaseError:  # not migrated yet
        return []
    return [
        Server(
            name=row.name,
            url=row.base_url,
            source="app",
            headers=tuple(sorted((row.headers or {}).items())),
            enabled=row.enabled,
            pk=row.pk,
        )
        for row in rows
    ]


_servers_cache: dict[str, Any] = {}


def _signature() -> tuple:
    return (tuple(getattr(settings, "OLLAMA_HOSTS", None) or ()), settings.OLLAMA_HOST)


def _merge(from_settings: list[Server], from_database: list[Server]) -> list[Server]:
    urls = {server.url for server in from_settings}
    return [*from_settings, *(server for server in from_database if server.url not in urls)]


def servers_all_sync() -> list[Server]:
    """Return every server, disabled ones included (sync code: forms, the servers page)."""
    cached = _servers_cache.get("entry")
    if cached and cached[0] > time.monotonic() and cached[1] == _signature():
        return cached[2]
    listed = _merge(settings_servers(), _database_servers())
    _servers_cache["entry"] = (time.monotonic() + SERVERS_TTL, _signature(), listed)
    return listed


async def servers_all() -> list[Server]:
    """Return every server, disabled ones included."""
    cached = _servers_cache.get("entry")
    if cached and cached[0] > time.monotonic() and cached[1] == _signature():
        return cached[2]
    return await sync_to_async(servers_all_sync)()


async def servers() -> list[Server]:
    """Return the enabled servers, environment ones first."""
    return [server for server in await servers_all() if server.enabled]


def servers_sync() -> list[Server]:
    return [server for server in servers_all_sync() if server.enabled]


async def server_named(name: str) -> Server | None:
    return next((server for server in await servers() if server.name == name), None)


def forget() -> None:
    """Drop every cache: the server list, health, model names (after an admin edits servers)."""
    _servers_cache.clear()
    _health.clear()
    _models.clear()
    _chat_models.clear()


def forget_servers() -> None:
    _servers_cache.clear()


# -- health ------------------------------------------------------------------------------------
_health: dict[str, tuple[float, Health]] = {}  # by URL: (checked at, result)
_checks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task]] = (
    weakref.WeakKeyDictionary()
)


def health_known(server: Server) -> Health | None:
    """Return the last known health of a server without asking it (None: never checked)."""
    entry = _health.get(server.url)
    return entry[1] if entry else None


def _is_fresh(server: Server) -> bool:
    entry = _health.get(server.url)
    return entry is not None and time.monotonic() - entry[0] < settings.OLLAMA_HEALTH_INTERVAL


def _record(server: Server, health: Health) -> None:
    previous = health_known(server)
    if previous is not None and previous.reachable != health.reachable:
        if health.reachable:
            logger.info("Ollama server %s (%s) is back", server.name, server.url)
        else:
            logger.warning("Ollama server %s (%s) is down: %s", server.name, server.url, health.error)
    _health[server.url] = (time.monotonic(), health)


def mark_down(server: Server, error: OllamaError) -> None:
    """Count a server as down until its next health check passes."""
    _record(server, Health(host=server.url, reachable=False, error=error.message))


async def _check(server: Server) -> Health:
    try:
        health = await server.gateway().health(timeout=settings.OLLAMA_HEALTH_TIMEOUT)
    except Exception as error:  # a health check must answer even when the gateway trips
        logger.warning("health check of Ollama server %s failed: %r", server.name, error)
        health = Health(host=server.url, reachable=False, error="unexpected answer")
    _record(server, health)
    return health


def _check_started(server: Server) -> asyncio.Task:
    """Return the running check of `server` on this loop, starting one if there is none."""
    loop = asyncio.get_running_loop()
    running = _checks.setdefault(loop, {})
    task = running.get(server.url)
    if task is None or task.done():
        task = loop.create_task(_check(server), name=f"ollama-health-{server.name}")
        running[server.url] = task
        # A finished task still points at its loop: drop it, so a closed loop can be collected.
        task.add_done_callback(lambda done, url=server.url: running.get(url) is done and running.pop(url))
    return task


async def health_many(servers_: Iterable[Server], *, refresh: bool = False) -> dict[str, Health]:
    """Return the health of each server by URL, checking the stale ones concurrently.

    A server never checked is waited for (at most one health timeout); one with a stale
    answer gets STALE_GRACE seconds, then its last known answer stands while the check goes
    on in the background. `refresh` waits for fresh answers (tests, the servers page).
    """
    listed = list(servers_)
    stale = [server for server in listed if refresh or not _is_fresh(server)]
    if stale:
        tasks = [_check_started(server) for server in stale]
        never = refresh or any(health_known(server) is None for server in stale)
        wait = settings.OLLAMA_HEALTH_TIMEOUT + 0.2 if never else STALE_GRACE
        await asyncio.wait(tasks, timeout=wait)
    result = {}
    for server in listed:
        known = health_known(server)
        result[server.url] = known or Health(host=server.url, reachable=False, error=_("not checked yet"))
    return result


async def any_reachable() -> bool:
    """Return whether at least one enabled server answers (readiness)."""
    listed = await servers()
    return any(health.reachable for health in (await health_many(listed)).values())


# -- requests in flight ------------------------------------------------------------------------
_in_flight: dict[str, int] = {}  # by URL: chat streams this process is running there


def in_flight(server: Server) -> int:
    return _in_flight.get(server.url, 0)


@contextlib.contextmanager
def _counted(server: Server):
    _in_flight[server.url] = _in_flight.get(server.url, 0) + 1
    try:
        yield
    finally:
        _in_flight[server.url] -= 1
        if not _in_flight[server.url]:
            del _in_flight[server.url]


# -- models per server -------------------------------------------------------------------------
_models: dict[str, tuple[float, frozenset[str]]] = {}  # by URL: (fetched at, canonical names)
_chat_models: dict[str, tuple[float, list[str], str]] = {}  # by server list: (fetched at, names, error)


def canonical(name: str) -> str:
    """Return the form Ollama lists a name under (`llama3.2` → `llama3.2:latest`), lower-cased."""
    name = name.strip().lower().removeprefix("registry.ollama.ai/").removeprefix("library/")
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def models_changed() -> None:
    """Forget which server has which model (after a pull, delete or copy)."""
    _models.clear()
    _chat_models.clear()


async def chat_models() -> tuple[list[str], str]:
    """Return the chat-capable model names of every server (cached briefly) and any error text.

    Names are merged: a model on two servers is listed once. The error is shown only when no
    server could list its models.
    """
    key = " ".join(server.url for server in await servers())
    cached = _chat_models.get(key)
    if cached and time.monotonic() - cached[0] < settings.OLLAMA_MODELS_TTL:
        return cached[1], cached[2]
    states = await overview(loaded=False)
    names: list[str] = []
    for state in states:
        for model in state.models:
            family = model.details.family if model.details and model.details.family else ""
            if (
                model.model
                and model.model not in names
                and "embedding" not in (getattr(model, "capabilities", None) or [])
                and "bert" not in family
            ):
                names.append(model.model)
    failures = [state.error for state in states if state.error is not None]
    error = failures[0].user_message if failures and len(failures) == len(states) else ""
    _chat_models[key] = (time.monotonic(), names, error)
    return names, error


def _remember_models(server: Server, names: Iterable[str]) -> frozenset[str]:
    known = frozenset(canonical(name) for name in names if name)
    _models[server.url] = (time.monotonic(), known)
    return known


async def model_names(server: Server) -> frozenset[str] | None:
    """Return the canonical names of a server's models (cached briefly); None if it cannot say."""
    entry = _models.get(server.url)
    if entry and time.monotonic() - entry[0] < settings.OLLAMA_MODELS_TTL:
        return entry[1]
    try:
        tags = await asyncio.wait_for(server.gateway().tags(), LIST_TIMEOUT)
    except (TimeoutError, OllamaError) as error:
        if not isinstance(error, OllamaError) or error.kind in DOWN_KINDS:
            mark_down(server, error if isinstance(error, OllamaError) else OllamaError("timed out"))
        return None
    return _remember_models(server, (model.model or "" for model in tags))


async def servers_with_model(model: str, servers_: list[Server] | None = None) -> list[Server]:
    """Return the healthy servers that have `model`."""
    listed = servers_ if servers_ is not None else await servers()
    health = await health_many(listed)
    healthy = [server for server in listed if health[server.url].reachable]
    names = await asyncio.gather(*(model_names(server) for server in healthy))
    wanted = canonical(model)
    return [server for server, known in zip(healthy, names, strict=True) if known and wanted in known]


# -- routing -----------------------------------------------------------------------------------
async def route(model: str) -> list[Server]:
    """Return the servers to try for a chat with `model`, best first.

    One server: always that one (its own error says what is wrong). Several: the healthy ones
    that have the model, fewest chats in flight first (then in listed order); when none has
    it (the cached lists may be old) every healthy one, so Ollama's "not found" is the answer.
    """
    listed = await servers()
    if len(listed) <= 1:
        return listed or settings_servers()[:1]
    health = await health_many(listed)
    healthy = [server for server in listed if health[server.url].reachable]
    if not healthy:
        names = ", ".join(server.name for server in listed)
        raise OllamaError("no Ollama server is reachable", kind="unreachable", host=names)
    position = {server.url: index for index, server in enumerate(listed)}

    def busyness(server: Server) -> tuple[int, int]:
        return (in_flight(server), position[server.url])

    having = await servers_with_model(model, healthy)
    return sorted(having or healthy, key=busyness)


class ChatStream:
    """Stream a chat reply from the best server, moving on to the next before the first token.

    Iterate it like the gateway's `chat_deltas` (or `chat_stream`, per `method`); `server` is
    the server answering now.
    """

    def __init__(self, request: dict[str, Any], *, method: str = "chat_deltas"):
        self.request = request
        self.method = method
        self.server: Server | None = None
        self._iterator = self._run()

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def aclose(self) -> None:
        await self._iterator.aclose()

    async def _run(self) -> AsyncIterator[Any]:
        model = self.request.get("model") or ""
        candidates = await route(model)
        several = len(await servers()) > 1
        for position, server in enumerate(candidates):
            self.server = server
            started = False
            with _counted(server):
                logger.info(
                    "chat model=%s on Ollama server %s (%s in flight)", model, server.name, in_flight(server)
                )
                try:
                    # aclosing: leaving early (stop, an error) closes the request to Ollama now.
                    chunks = getattr(server.gateway(), self.method)(**self.request)
                    async with contextlib.aclosing(chunks):
                        async for chunk in chunks:
                            started = True
                            yield chunk
                    return
                except OllamaError as error:
                    if error.kind in DOWN_KINDS:
                        mark_down(server, error)
                    if started or position == len(candidates) - 1 or error.kind not in FAILOVER_KINDS:
                        if several:
                            logger.warning(
                                "chat model=%s failed on Ollama server %s: %s", model, server.name, error
                            )
                            raise ServerFailed(error, server=server) from error
                        raise
                    following = candidates[position + 1]
                    logger.warning(
                        "chat model=%s: Ollama server %s failed before the first token (%s); trying %s",
                        model,
                        server.name,
                        error,
                        following.name,
                    )


def chat_deltas(**request: Any) -> ChatStream:
    """Return the reply's text deltas from the best server for `request["model"]` (ChatStream)."""
    return ChatStream(request, method="chat_deltas")


def chat_stream(**request: Any) -> ChatStream:
    """Return the reply's chunks from the best server for `request["model"]` (ChatStream)."""
    return ChatStream(request, method="chat_stream")


async def chat(**request: Any) -> ChatResponse:
    """Answer a short chat (titles) at once on the best server for the model."""
    candidates = await route(request.get("model") or "")
    return await candidates[0].gateway().chat(**request)


async def loaded_names(stream: ChatStream | None) -> set[str]:
    """Return the names of the models loaded on the server answering `stream`."""
    server = stream.server if stream is not None and stream.server is not None else await primary()
    client = server.gateway()
    return {running.model for running in await client.ps() if running.model}


# -- the dashboard -----------------------------------------------------------------------------
@dataclass
class ServerState:
    """What the dashboard shows of one server."""

    server: Server
    health: Health
    in_flight: int = 0
    models: list[Any] = field(default_factory=list)  # ollama ListResponse.Model
    loaded: list[Any] = field(default_factory=list)  # ollama ProcessResponse.Model
    error: OllamaError | None = None

    @property
    def reachable(self) -> bool:
        return self.health.reachable and self.error is None


def _error_of(health: Health) -> OllamaError:
    kind = "timeout" if health.error == "timed out" else "unreachable"
    return OllamaError(health.error or "unreachable", kind=kind, host=health.host)


async def overview(*, models: bool = True, loaded: bool = True) -> list[ServerState]:
    """Return each enabled server's health, models and loaded models, asking all at once.

    A server that fails its health check is not asked anything else.
    """
    listed = await servers()
    health = await health_many(listed)

    async def state_of(server: Server) -> ServerState:
        state = ServerState(server=server, health=health[server.url], in_flight=in_flight(server))
        if not state.health.reachable:
            state.error = _error_of(state.health)
            return state
        calls = []
        if models:
            calls.append(asyncio.wait_for(server.gateway().tags(), LIST_TIMEOUT))
        if loaded:
            calls.append(asyncio.wait_for(server.gateway().ps(), LIST_TIMEOUT))
        work = asyncio.ensure_future(asyncio.gather(*calls, return_exceptions=True))
        check = _checks.get(asyncio.get_running_loop(), {}).get(server.url)
        if check is not None and not check.done():
            # Its last answer is old and a check is on its way: if the check finds the server
            # down first, stop waiting for its lists (a stalled server costs one health timeout).
            await asyncio.wait({work, check}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done() and not check.cancelled() and not check.result().reachable:
                work.cancel()
                state.health = check.result()
                state.error = _error_of(state.health)
                return state
        answers = await work
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, (OllamaError, TimeoutError)):
                raise answer
            if isinstance(answer, (OllamaError, TimeoutError)) and state.error is None:
                error = (
                    answer if isinstance(answer, OllamaError) else OllamaError("timed out", kind="timeout")
                )
                error.host = error.host or server.url
                state.error = error
                if error.kind in DOWN_KINDS:
                    mark_down(server, error)
        if models and not isinstance(answers[0], BaseException):
            state.models = list(answers[0])
            _remember_models(server, (model.model or "" for model in state.models))
        if loaded and not isinstance(answers[-1], BaseException):
            state.loaded = list(answers[-1])
        return state

    return list(await asyncio.gather(*(state_of(server) for server in listed)))


async def targets(choice: str, *, having: str = "") -> list[Server]:
    """Return the servers a pull, delete or unload acts on.

    `choice` is a server's name, or ALL / empty for every server; with `having` (a model
    name) and several servers, only the healthy servers that have that model.
    """
    listed = await servers()
    if choice and choice != ALL:
        return [server for server in listed if server.name == choice]
    if not having or len(listed) <= 1:
        return listed
    return await servers_with_model(having, listed)


async def primary(model: str = "") -> Server:
    """Return the server to inspect, copy, push, create or embed with: one that has `model`."""
    listed = await servers() or settings_servers()[:1]
    if model and len(listed) > 1:
        having = await servers_with_model(model, listed)
        if having:
            return having[0]
        health = await health_many(listed)
        healthy = [server for server in listed if health[server.url].reachable]
        if healthy:
            return healthy[0]
    return listed[0]
