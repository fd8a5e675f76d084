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
import urllib.request
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
from ollama._client import _copy_messages, _parse_host
from ollama._types import ChatRequest

__all__ = [
    "ChatDelta",
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


def _unreachable(host: str) -> OllamaError:
    return OllamaError(f"cannot connect to {host}", kind="unreachable", host=host)


def _timed_out(host: str) -> OllamaError:
    return OllamaError(f"no answer from {host} in time", kind="timeout", host=host)


def _dropped(host: str) -> OllamaError:
    return OllamaError(f"connection to {host} dropped", kind="dropped", host=host)


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
        raise _unreachable(host) from error
    except httpx.TimeoutException as error:
        raise _timed_out(host) from error
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
        raise _dropped(host) from error
    except json.JSONDecodeError as error:
        raise OllamaError(f"unreadable answer from {host}", kind="http", host=host) from error


@dataclass
class ChatDelta:
    """The text of a streamed chat reply that arrived in one network read: often many tokens.

    `final` is Ollama's closing chunk (done, done_reason and the statistics) once it arrived.
    `gathered` says the text is everything that arrived since the previous delta: a reader may
    then wait between deltas and lose nothing but latency, while (on the httpx path, one
    HTTP chunk per delta) waiting would fall behind the stream.
    """

    content: str = ""
    thinking: str = ""
    final: ChatResponse | None = None
    gathered: bool = False


def _chat_delta(lines: str, host: str) -> tuple[ChatDelta, OllamaError | None]:
    """Parse complete NDJSON lines of /api/chat; return their text and any error line found.

    One json.loads over the lines as an array costs less than half of one per line, and only
    the closing chunk becomes a pydantic model.
    """
    parts = json.loads("[" + ",".join(line for line in lines.split("\n") if line.strip()) + "]")
    content: list[str] = []
    thinking: list[str] = []
    delta = ChatDelta()
    failure = None
    for part in parts:
        if error := part.get("error"):  # what the official client raises on, with status -1
            failure = _error_from_status(str(error), STREAM_ERROR, host)
            break
        message = part.get("message") or {}
        if text := message.get("content"):
            content.append(text)
        if text := message.get("thinking"):
            thinking.append(text)
        if part.get("done"):
            delta.final = ChatResponse(**part)
    delta.content = "".join(content)
    delta.thinking = "".join(thinking)
    return delta, failure


# -- chat streams read straight off the socket ---------------------------------------------------
class _Redirected(Exception):
    """The server answered a stream with a redirect: let httpx follow it."""


class _NDJSONResponse(asyncio.Protocol):
    """One HTTP/1.1 response to a streamed request, parsed as its bytes arrive.

    The status line, the headers and a chunked, sized or close-delimited body are parsed in
    `data_received`; the body's complete lines wait in a buffer until the reader takes them
    all at once. A token costs one callback, and a busy server takes many tokens per wakeup;
    httpx hands each HTTP chunk over on its own, through a dozen layers, at several times the
    CPU (measured in docs/benchmarks.md). The connection is kept for the next stream when the
    response ended cleanly.
    """

    HIGH_WATER = 1 << 20  # bytes of body waiting for the reader before the socket is paused

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.raw = bytearray()  # received, not parsed yet
        self.lost: BaseException | None = None
        self.reset()

    def reset(self) -> None:
        """Get ready for the next response on this connection."""
        self.body = bytearray()  # parsed body, not taken by the reader yet
        self.status = 0
        self.headers: dict[str, str] = {}
        self.state = "head"  # head, size, data, crlf, trailer, length, close, done
        self.chunk_left = 0
        self.length_left = 0
        self.keep_alive = True
        self.received = False
        self.reused = False
        self.paused = False
        self.waiter: asyncio.Future | None = None

    @property
    def finished(self) -> bool:
        return self.state == "done"

    @property
    def open(self) -> bool:
        """Return True while the connection can carry another request."""
        return (
            self.keep_alive
            and self.lost is None
            and not self.raw
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        self.raw += data
        try:
            self._parse()
        except ValueError as error:  # not HTTP as we know it
            self.lost = error
            self.keep_alive = False
            self.transport.abort()
        if len(self.body) > self.HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.keep_alive = False
        if self.state == "close":
            self.state = "done"
        elif not self.finished:
            self.lost = ConnectionResetError("the server closed the connection")
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        if self.state == "close":
            self.state = "done"
        elif not self.finished and self.lost is None:
            self.lost = exc or ConnectionResetError("the connection closed")
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _parse(self) -> None:
        raw, position = self.raw, 0
        while position < len(raw) or self.state == "trailer":
            if self.state == "head":
                end = raw.find(b"\r\n\r\n", position)
                if end < 0:
                    break
                lines = raw[position:end].decode("latin-1").split("\r\n")
                position = end + 4
                version, status = lines[0].split(" ", 2)[:2]
                self.status = int(status)
                if 100 <= self.status < 200:
                    continue  # an interim answer; the real one follows
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    self.headers[name.strip().lower()] = value.strip()
                self.keep_alive = version == "HTTP/1.1" and "close" not in self.headers.get("connection", "")
                if "chunked" in self.headers.get("transfer-encoding", "").lower():
                    self.state = "size"
                elif "content-length" in self.headers:
                    self.length_left = int(self.headers["content-length"])
                    self.state = "length" if self.length_left else "done"
                else:
                    self.state = "close"
                    self.keep_alive = False
            elif self.state == "size":
                end = raw.find(b"\r\n", position)
                if end < 0:
                    break
                size = int(bytes(raw[position:end]).split(b";", 1)[0], 16)
                position = end + 2
                self.state, self.chunk_left = ("data", size) if size else ("trailer", 0)
            elif self.state in ("data", "length"):
                left = self.chunk_left if self.state == "data" else self.length_left
                take = min(len(raw) - position, left)
                self.body += raw[position : position + take]
                position += take
                if self.state == "data":
                    self.chunk_left -= take
                    if not self.chunk_left:
                        self.state = "crlf"
                else:
                    self.length_left -= take
                    if not self.length_left:
                        self.state = "done"
            elif self.state == "crlf":
                if len(raw) - position < 2:
                    break
                if raw[position : position + 2] != b"\r\n":
                    raise ValueError("a chunk did not end with CRLF")
                position += 2
                self.state = "size"
            elif self.state == "trailer":
                end = raw.find(b"\r\n", position)
                if end < 0:
                    break
                self.state = "done" if end == position else "trailer"
                position = end + 2
            elif self.state == "close":
                self.body += raw[position:]
                position = len(raw)
            else:  # "done": bytes after the response; the connection cannot be trusted again
                self.keep_alive = False
                position = len(raw)
        del raw[:position]

    async def lines(self, timeout: float | None) -> bytes | None:
        """Return every complete body line received so far, waiting for one; None at the end.

        Raises TimeoutError when no byte comes for `timeout` seconds, ConnectionError when the
        connection ends before the response does.
        """
        while True:
            end = self.body.rfind(b"\n")
            if end >= 0 or (self.finished and self.body):
                end = end if end >= 0 and not self.finished else len(self.body) - 1
                taken = bytes(self.body[: end + 1])
                del self.body[: end + 1]
                if self.paused:
                    self.paused = False
                    self.transport.resume_reading()
                return taken
            if self.finished:
                return None
            if self.lost is not None:
                raise ConnectionError(str(self.lost))
            await self._wait(timeout)

    async def head(self, timeout: float | None) -> None:
        """Wait for the status line and headers."""
        while self.state == "head":
            if self.lost is not None:
                raise ConnectionError(str(self.lost))
            await self._wait(timeout)

    async def _wait(self, timeout: float | None) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation (Stop)
        # that arrives as the awaited bytes do, and the reply then runs on to its end.
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self.waiter
        finally:
            self.waiter = None


@dataclass
class _DirectTarget:
    """Where chat streams go without httpx: a plain-HTTP Ollama reached without a proxy."""

    host: str
    port: int
    head: bytes  # the request line and headers, but for Content-Length


def _direct_target(client: httpx.AsyncClient) -> _DirectTarget | None:
    """Return the direct target for chat streams, or None when httpx must carry them.

    https, or an HTTP proxy from the environment (which httpx honours), leave streams to httpx.
    """
    url = client.base_url
    if url.scheme != "http" or not url.host:
        return None
    proxies = urllib.request.getproxies_environment()
    if (proxies.get("http") or proxies.get("all")) and not urllib.request.proxy_bypass_environment(
        url.host, proxies
    ):
        return None
    path = url.raw_path.decode("ascii").rstrip("/") + "/api/chat"
    skipped = {"host", "content-length", "accept-encoding", "transfer-encoding"}
    lines = [f"POST {path} HTTP/1.1", f"Host: {url.netloc.decode('ascii')}"]
    lines += [
        f"{name}: {value}" for name, value in client.headers.multi_items() if name.lower() not in skipped
    ]
    return _DirectTarget(url.host, url.port or 80, ("\r\n".join(lines) + "\r\n").encode("latin-1"))


def _decoded(data: bytes, host: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise OllamaError(f"unreadable answer from {host}", kind="http", host=host) from error


async def _all_lines(response: _NDJSONResponse, timeout: float | None) -> AsyncIterator[bytes]:
    while (lines := await response.lines(timeout)) is not None:
        yield lines


class _Release(httpx.AsyncByteStream):
    """A response body that gives its lane's slot back when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, lane: _Lane):
        self.stream = stream
        self.lane = lane
        self.released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self.stream:
            yield part

    async def aclose(self) -> None:
        try:
            await self.stream.aclose()
        finally:
            if not self.released:
                self.released = True
                self.lane.in_flight -= 1


@dataclass
class _Lane:
    transport: httpx.AsyncHTTPTransport
    in_flight: int = 0


class LanedTransport(httpx.AsyncBaseTransport):
    """Spread requests over several small connection pools, the least busy first.

    httpcore's pool walks all its connections, and for each idle one all of them again, on
    every request and every response close (httpcore 1.0.9). With one pool as large as the
    number of streams running at once (hundreds) that bookkeeping cost more CPU than the
    streams themselves and delayed every new chat; pools of LANE_SIZE keep it small.
    """

    LANE_SIZE = 16

    def __init__(self, *, max_connections: int, lane_size: int | None = None):
        self.lane_size = lane_size or self.LANE_SIZE
        self.max_lanes = max(1, -(-max_connections // self.lane_size))
        self.lanes: list[_Lane] = []
        self.ssl_context = None  # made once (loading the CA bundle is slow), shared by the lanes

    def _lane(self) -> _Lane:
        lane = min(self.lanes, key=lambda lane: lane.in_flight, default=None)
        if lane is None or (lane.in_flight >= self.lane_size and len(self.lanes) < self.max_lanes):
            if self.ssl_context is None:
                self.ssl_context = httpx.create_ssl_context()
            limits = httpx.Limits(max_connections=self.lane_size, max_keepalive_connections=self.lane_size)
            lane = _Lane(httpx.AsyncHTTPTransport(verify=self.ssl_context, limits=limits))
            self.lanes.append(lane)
        return lane

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lane = self._lane()
        lane.in_flight += 1
        try:
            response = await lane.transport.handle_async_request(request)
        except BaseException:
            lane.in_flight -= 1
            raise
        response.stream = _Release(response.stream, lane)
        return response

    async def aclose(self) -> None:
        for lane in self.lanes:
            await lane.transport.aclose()


@dataclass(frozen=True)
class Health:
    host: str
    reachable: bool
    version: str = ""
    error: str = ""
    latency_ms: float = 0.0


class Gateway:
    """One Ollama server, reached through one pooled client."""

    def __init__(
        self,
        host: str | None = None,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        self.host = parse_host(host if host is not None else settings.OLLAMA_HOST)
        read_timeout = timeout if timeout is not None else settings.OLLAMA_TIMEOUT
        self.client = ollama.AsyncClient(
            host=self.host,
            # A server added in the app carries its own headers; else OLLAMA_HEADERS applies.
            headers=dict(headers) if headers is not None else settings.OLLAMA_HEADERS,
            timeout=httpx.Timeout(read_timeout, connect=settings.OLLAMA_CONNECT_TIMEOUT),
            # Streams hold a connection each for their whole length: a single pool of the
            # default 100 would queue the 101st chat behind a finished reply.
            transport=LanedTransport(max_connections=settings.OLLAMA_MAX_CONNECTIONS),
        )
        self._direct = _direct_target(self.client._client)
        self._idle: list[tuple[float, _NDJSONResponse]] = []  # kept-alive stream connections

    IDLE_SECONDS = 5.0  # as httpx keeps idle connections
    IDLE_MAX = 32

    async def close(self) -> None:
        for _since, response in self._idle:
            response.transport.close()
        self._idle.clear()
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

    def chat_deltas(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        options: Mapping[str, Any] | None = None,
        keep_alive: str | int | None = None,
        think: bool | str | None = None,
    ) -> AsyncIterator[ChatDelta]:
        """Stream a chat reply as the text of each network read; closing the iterator closes the request.

        The same request and the same errors as `chat_stream`, without building a pydantic
        model per token: at tens of thousands of tokens a second that was most of the
        server's CPU. The connection comes from the official client's own httpx pool.
        """
        return self._chat_deltas(
            model=model,
            messages=messages,
            options=dict(options) if options else None,
            keep_alive=keep_alive,
            think=think,
        )

    async def _chat_deltas(self, **request: Any) -> AsyncIterator[ChatDelta]:
        with _translate_errors(self.host):
            body = ChatRequest(  # the body the official client sends, tools and all
                messages=list(_copy_messages(request.pop("messages"))), tools=[], stream=True, **request
            ).model_dump(exclude_none=True)
        if self._direct is not None:
            try:
                async for delta in self._chat_deltas_direct(body):
                    yield delta
                return
            except _Redirected:
                pass  # nothing was yielded: httpx follows the redirect as the official client would
        async for delta in self._chat_deltas_httpx(body):
            yield delta

    async def _chat_deltas_direct(self, body: dict[str, Any]) -> AsyncIterator[ChatDelta]:
        read_timeout = self.client._client.timeout.read
        async with self._direct_response(body) as response:
            while (lines := await response.lines(read_timeout)) is not None:
                delta, failure = _chat_delta(_decoded(lines, self.host), self.host)
                delta.gathered = True
                if delta.content or delta.thinking or delta.final:
                    yield delta
                if failure is not None:
                    raise failure

    @contextlib.asynccontextmanager
    async def _direct_response(self, body: dict[str, Any]) -> AsyncIterator[_NDJSONResponse]:
        """POST `body` to /api/chat on a socket of our own; yield the response once it is a 200.

        Timeouts and lost connections, here or while the caller reads the body, become
        OllamaError as httpx's do; the connection is kept for the next request when the
        response was read to its end, and closed otherwise (Stop closes the request at once).
        """
        timeout = self.client._client.timeout
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        request = self._direct.head + b"Content-Length: %d\r\n\r\n" % len(payload) + payload
        response = await self._stream_send(request, timeout, reuse=True)
        try:
            try:
                try:
                    await response.head(timeout.read)
                except ConnectionError:
                    if response.received or not response.reused:
                        raise
                    # A kept-alive connection the server had closed meanwhile: once more, anew.
                    response.transport.close()
                    response = await self._stream_send(request, timeout, reuse=False)
                    await response.head(timeout.read)
                if 300 <= response.status < 400:
                    raise _Redirected
                if response.status != 200:
                    text = b"".join([part async for part in _all_lines(response, timeout.read)])
                    raise _error_from_status(text.decode("utf-8", "replace"), response.status, self.host)
                yield response
            except TimeoutError as error:
                raise _timed_out(self.host) from error
            except ConnectionError as error:
                raise _dropped(self.host) from error
            except json.JSONDecodeError as error:
                raise OllamaError(
                    f"unreadable answer from {self.host}", kind="http", host=self.host
                ) from error
        finally:
            if response.finished and response.open and len(self._idle) < self.IDLE_MAX:
                response.reset()
                self._idle.append((time.monotonic(), response))
            else:  # Stop, errors, a server that closes: the request ends here and now
                response.transport.close()

    async def _stream_send(self, request: bytes, timeout: httpx.Timeout, *, reuse: bool) -> _NDJSONResponse:
        """Send `request` on a kept-alive connection (when `reuse`) or a new one."""
        now = time.monotonic()
        while reuse and self._idle:
            since, response = self._idle.pop()
            if response.open and now - since < self.IDLE_SECONDS:
                response.reused = True
                response.transport.write(request)
                return response
            response.transport.close()
        loop = asyncio.get_running_loop()
        target = self._direct
        try:
            async with asyncio.timeout(timeout.connect):
                _transport, response = await loop.create_connection(_NDJSONResponse, target.host, target.port)
        except TimeoutError as error:
            raise _timed_out(self.host) from error
        except OSError as error:
            raise _unreachable(self.host) from error
        response.transport.write(request)
        return response

    async def _chat_deltas_httpx(self, body: dict[str, Any]) -> AsyncIterator[ChatDelta]:
        with _translate_errors(self.host):
            async with self.client._client.stream("POST", "/api/chat", json=body) as response:
                if not response.is_success:
                    await response.aread()
                    raise _error_from_status(response.text, response.status_code, self.host)
                pending = ""
                async for text in response.aiter_text():
                    pending += text
                    end = pending.rfind("\n")
                    if end < 0:
                        continue
                    delta, failure = _chat_delta(pending[:end], self.host)
                    pending = pending[end + 1 :]
                    if delta.content or delta.thinking or delta.final:
                        yield delta
                    if failure is not None:
                        raise failure
                if pending.strip():
                    delta, failure = _chat_delta(pending, self.host)
                    if delta.content or delta.thinking or delta.final:
                        yield delta
                    if failure is not None:
                        raise failure

    async def chat(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        options: Mapping[str, Any] | None = None,
        keep_alive: str | int | None = None,
        think: bool | None = None,
    ) -> ChatResponse:
        arguments = {
            "model": model,
            "options": dict(options) if options else None,
            "keep_alive": keep_alive,
            "think": think,
        }
        if self._direct is not None:  # as chat_deltas: the same request, on a socket of our own
            with _translate_errors(self.host):
                body = ChatRequest(
                    messages=list(_copy_messages(messages)), tools=[], stream=False, **arguments
                ).model_dump(exclude_none=True)
            try:
                async with self._direct_response(body) as response:
                    read_timeout = self.client._client.timeout.read
                    answer = b"".join([part async for part in _all_lines(response, read_timeout)])
                return ChatResponse(**json.loads(_decoded(answer, self.host)))
            except json.JSONDecodeError as error:
                raise OllamaError(
                    f"unreadable answer from {self.host}", kind="http", host=self.host
                ) from error
            except _Redirected:
                pass
        return await self._call(self.client.chat(messages=list(messages), stream=False, **arguments))

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


def gateway(host: str | None = None, *, headers: Mapping[str, str] | None = None) -> Gateway:
    """Return the shared gateway for `host` (default: OLLAMA_HOST) on the running loop.

    httpx connections belong to one event loop, so each loop gets its own client; under
    daphne there is one loop per process, hence one pooled client per host (and headers).
    """
    loop = asyncio.get_running_loop()
    base_url = parse_host(host if host is not None else settings.OLLAMA_HOST)
    key = base_url if headers is None else f"{base_url} {sorted(headers.items())!r}"
    per_loop = _gateways.setdefault(loop, {})
    if key not in per_loop:
        per_loop[key] = Gateway(base_url, headers=headers)
    return per_loop[key]
