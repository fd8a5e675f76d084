"""The gateway to Ollama: the only module that talks to an Ollama server.

It owns one `ollama.AsyncClient` per (host, event loop), so connections are reused, sets the
timeouts, pool limits and extra headers, and turns every failure into one `OllamaError`
carrying the HTTP status and Ollama's own message.

Results are the official client's typed pydantic models (`ChatResponse`, `ProgressResponse`,
`ListResponse.Model`, `ShowResponse`, `ProcessResponse`, `EmbedResponse`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import ollama
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from ollama import (
    ChatResponse,
    EmbedResponse,
    ListResponse,
    ProcessResponse,
    ProgressResponse,
    ShowResponse,
)
from ollama._client import _parse_host

__all__ = [
    "ChatResponse",
    "EmbedResponse",
    "Gateway",
    "OllamaError",
    "ProcessResponse",
    "ProgressResponse",
    "ShowResponse",
    "gateway",
    "parse_host",
]

STREAM_ERROR = -1  # status of an {"error": ...} line inside a 200 stream (as the client reports)


class OllamaError(Exception):
    """Any failure talking to Ollama.

    `status` is the HTTP status (404, 500, 503, ...), `STREAM_ERROR` (-1) for an error line
    inside a 200 stream, or None when no HTTP answer came (unreachable, timeout, dropped).
    `message` is Ollama's own error text where it sent one. `kind` is one of
    unreachable, timeout, dropped, not_found, busy, stream, http.
    """

    def __init__(self, message: str, *, status: int | None = None, kind: str = "http", host: str = ""):
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind
        self.host = host

    def __str__(self) -> str:
        if self.status and self.status > 0:
            return f"{self.message} (HTTP {self.status})"
        return self.message

    @property
    def user_message(self) -> str:
        """Return a sentence fit to show a user, in their language."""
        if self.kind == "unreachable":
            return str(_("Ollama is unreachable at %(host)s.") % {"host": self.host})
        if self.kind == "timeout":
            return str(_("Ollama stopped answering (timed out)."))
        if self.kind == "dropped":
            return str(_("The connection to Ollama was lost mid-reply."))
        if self.kind == "busy":
            return str(_("Ollama is busy right now; please try again in a moment."))
        if self.kind == "not_found":
            return str(_("Model not found: %(detail)s") % {"detail": self.message})
        return str(_("Ollama reported an error: %(detail)s") % {"detail": self.message})


def parse_host(host: str | None) -> str:
    """Return the base URL for OLLAMA_HOST, parsed exactly as the official client does."""
    return _parse_host(host or None)


def _error_from_status(message: str, status: int, host: str) -> OllamaError:
    try:  # the official client keeps non-JSON bodies raw; JSON ones are already unwrapped
        message = json.loads(message).get("error", message)
    except (ValueError, AttributeError):
        pass
    if status == 404:
        kind = "not_found"
    elif status == 503:
        kind = "busy"
    elif status == STREAM_ERROR:
        kind = "stream"
    else:
        kind = "http"
    return OllamaError(message or f"HTTP {status}", status=status, kind=kind, host=host)


@contextlib.contextmanager
def _translate_errors(host: str):
    """Turn client, httpx and connection failures into OllamaError."""
    try:
        yield
    except OllamaError:
        raise
    except ollama.ResponseError as error:
        raise _error_from_status(error.error, error.status_code, host) from error
    except (httpx.ConnectError, ConnectionError) as error:
        raise OllamaError(f"cannot connect to {host}", kind="unreachable", host=host) from error
    except httpx.TimeoutException as error:
        raise OllamaError(f"no answer from {host} in time", kind="timeout", host=host) from error
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
        raise OllamaError(f"connection to {host} dropped", kind="dropped", host=host) from error
    except json.JSONDecodeError as error:
        raise OllamaError(f"unreadable answer from {host}", kind="http", host=host) from error


@dataclass(frozen=True)
class Health:
    host: str
    reachable: bool
    version: str = ""
    error: str = ""
    latency_ms: float = 0.0


class Gateway:
    """One Ollama server, reached through one pooled client."""

    def __init__(self, host: str | None = None, *, timeout: float | None = None):
        self.host = parse_host(host if host is not None else settings.OLLAMA_HOST)
        read_timeout = timeout if timeout is not None else settings.OLLAMA_TIMEOUT
        self.client = ollama.AsyncClient(
            host=self.host,
            headers=settings.OLLAMA_HEADERS,
            timeout=httpx.Timeout(read_timeout, connect=settings.OLLAMA_CONNECT_TIMEOUT),
            # Streams hold a connection each for their whole length: the default of 100
            # would queue the 101st chat behind a finished reply.
            limits=httpx.Limits(
                max_connections=settings.OLLAMA_MAX_CONNECTIONS,
                max_keepalive_connections=min(200, settings.OLLAMA_MAX_CONNECTIONS),
            ),
        )

    async def close(self) -> None:
        await self.client.close()

    async def _call(self, coroutine):
        with _translate_errors(self.host):
            return await coroutine

    async def _stream(self, iterator_coroutine) -> AsyncIterator[Any]:
        with _translate_errors(self.host):
            iterator = await iterator_coroutine
            async with contextlib.aclosing(iterator):
                async for part in iterator:
                    yield part

    # -- status -------------------------------------------------------------------------
    async def version(self) -> str:
        response = await self._call(self.client._request_raw("GET", "/api/version"))
        return response.json().get("version", "")

    async def health(self, *, timeout: float = 2.0) -> Health:
        """Return reachability and version, never raising; gives up after `timeout`."""
        started = time.perf_counter()
        try:
            version = await asyncio.wait_for(self.version(), timeout)
        except (TimeoutError, OllamaError) as error:
            message = error.message if isinstance(error, OllamaError) else "timed out"
            return Health(host=self.host, reachable=False, error=message)
        return Health(
            host=self.host,
            reachable=True,
            version=version,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def tags(self) -> list[ListResponse.Model]:
        return list((await self._call(self.client.list())).models)

    async def ps(self) -> list[ProcessResponse.Model]:
        return list((await self._call(self.client.ps())).models)

    async def show(self, model: str) -> ShowResponse:
        return await self._call(self.client.show(model))

    # -- generation ---------------------------------------------------------------------
    def chat_stream(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        options: Mapping[str, Any] | None = None,
        keep_alive: str | int | None = None,
        think: bool | str | None = None,
    ) -> AsyncIterator[ChatResponse]:
        """Stream a chat reply chunk by chunk; closing the iterator closes the request."""
        return self._stream(
            self.client.chat(
                model=model,
                messages=list(messages),
                options=dict(options) if options else None,
                keep_alive=keep_alive,
                think=think,
                stream=True,
            )
        )

    async def chat(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        options: Mapping[str, Any] | None = None,
        keep_alive: str | int | None = None,
        think: bool | None = None,
    ) -> ChatResponse:
        return await self._call(
            self.client.chat(
                model=model,
                messages=list(messages),
                options=dict(options) if options else None,
                keep_alive=keep_alive,
                think=think,
                stream=False,
            )
        )

    async def unload(self, model: str) -> None:
        """Ask Ollama to drop a loaded model now (an empty chat with keep_alive 0)."""
        await self._call(self.client.chat(model=model, messages=[], keep_alive=0, stream=False))

    async def embed(self, *, model: str, input: str | Sequence[str]) -> EmbedResponse:
        return await self._call(self.client.embed(model=model, input=input))

    # -- model management ---------------------------------------------------------------
    def pull(self, model: str, *, insecure: bool = False) -> AsyncIterator[ProgressResponse]:
        return self._stream(self.client.pull(model, insecure=insecure, stream=True))

    def push(self, model: str, *, insecure: bool = False) -> AsyncIterator[ProgressResponse]:
        return self._stream(self.client.push(model, insecure=insecure, stream=True))

    def create(
        self,
        *,
        model: str,
        from_: str,
        system: str | None = None,
        template: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[ProgressResponse]:
        return self._stream(
            self.client.create(
                model=model,
                from_=from_,
                system=system or None,
                template=template or None,
                parameters=dict(parameters) if parameters else None,
                stream=True,
            )
        )

    async def copy(self, *, source: str, destination: str) -> None:
        await self._call(self.client.copy(source, destination))

    async def delete(self, model: str) -> None:
        await self._call(self.client.delete(model))


_gateways: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Gateway]] = (
    weakref.WeakKeyDictionary()
)


def gateway(host: str | None = None) -> Gateway:
    """Return the shared gateway for `host` (default: OLLAMA_HOST) on the running loop.

    httpx connections belong to one event loop, so each loop gets its own client; under
    daphne there is one loop per process, hence one pooled client per host.
    """
    loop = asyncio.get_running_loop()
    base_url = parse_host(host if host is not None else settings.OLLAMA_HOST)
    per_loop = _gateways.setdefault(loop, {})
    if base_url not in per_loop:
        per_loop[base_url] = Gateway(base_url)
    return per_loop[base_url]
