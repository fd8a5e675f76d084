"""The load client: the page's side of docs/websocket.md over real sockets, and a direct reader.

`ChatSocket` is what `static/js/chat.js` does, minus the DOM: it keeps `have` per reply, appends
`c[have - o:]`, and counts what the protocol forbids (gaps, duplicates, sequence numbers out of
order). Every frame is stamped on arrival so the benchmarks can tell first-token latency and the
delay the relay adds. `direct_chat` reads the double's NDJSON `/api/chat` with the same stamping,
for the "what the double and this client can do without the web UI" figures.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

MODEL = "llama3.2"  # a seed model of the double without thinking: every token is content
_refs = itertools.count(1)


class CountingConnection(ClientConnection):
    """A websocket connection that counts the bytes it reads off the TCP socket."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.bytes_received = 0

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        super().data_received(data)


@dataclass
class Chat:
    """One reply as a page sees it: text rebuilt from offsets, arrival times, protocol faults."""

    ref: str
    sent_at: float
    expected: str | None = None
    keep_arrivals: bool = False
    conversation: int | None = None
    reply: int | None = None
    turn_at: float | None = None
    first_at: float | None = None
    done_at: float | None = None
    title_at: float | None = None
    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    parts: list[str] = field(default_factory=list)
    have: int = 0
    seq: int = 0
    lost: int = 0  # characters skipped over (a gap the page would have to re-subscribe for)
    duplicated: int = 0  # characters sent twice
    out_of_order: int = 0  # frames whose seq is not the previous one plus one
    frames: int = 0
    bytes_at_send: int = 0
    bytes_at_done: int = 0
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    finished: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    titled: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    @property
    def first_token_latency(self) -> float | None:
        return None if self.first_at is None else self.first_at - self.sent_at

    @property
    def ok(self) -> bool:
        """Return True when the reply completed with exactly the text the double generated."""
        return bool(
            self.done
            and self.done.get("status") == "complete"
            and not (self.lost or self.duplicated or self.out_of_order)
            and (self.expected is None or self.text == self.expected)
        )

    def on_text(self, frame: dict[str, Any], now: float) -> None:
        self.frames += 1
        seq = frame.get("seq", 0)
        if frame["type"] == "delta":
            if seq != self.seq + 1:
                self.out_of_order += 1
            self.seq = max(self.seq, seq)
        chunk = frame.get("c")
        if not chunk:
            return
        offset = frame["o"]
        if offset > self.have:
            self.lost += offset - self.have
            return  # a page would re-subscribe; the benchmark counts the loss instead
        if offset < self.have:
            self.duplicated += min(self.have - offset, len(chunk))
        new = chunk[self.have - offset :]
        if new:
            if self.first_at is None:
                self.first_at = now
            self.parts.append(new)
            self.have += len(new)
            if self.keep_arrivals:
                self.arrivals.append((now, self.have))


class ChatSocket:
    """One page's websocket on /ws/chat/."""

    def __init__(self, connection: CountingConnection):
        self.connection = connection
        self.pending: dict[str, Chat] = {}  # by ref, until the turn frame names the reply
        self.chats: dict[int, Chat] = {}  # by reply id
        self.by_conversation: dict[int, Chat] = {}  # the latest chat per conversation, for titles
        self.early: dict[int, list[tuple[dict[str, Any], float]]] = {}
        self.frames_received = 0
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, ws_url: str, *, cookie: str, origin: str) -> ChatSocket:
        connection = await connect(
            ws_url + "/ws/chat/",
            origin=origin,
            additional_headers={"Cookie": f"sessionid={cookie}"},
            create_connection=CountingConnection,
            compression=None,  # daphne does not negotiate it; say so rather than offer it
            ping_interval=None,
            max_size=16 * 1024 * 1024,
            max_queue=None,
            open_timeout=60,
        )
        return cls(connection)

    @property
    def bytes_received(self) -> int:
        return self.connection.bytes_received

    async def send_chat(
        self,
        content: str,
        *,
        conversation: int | None = None,
        expected: str | None = None,
        keep_arrivals: bool = False,
    ) -> Chat:
        ref = f"b{next(_refs)}"
        chat = Chat(ref=ref, sent_at=0.0, expected=expected, keep_arrivals=keep_arrivals)
        self.pending[ref] = chat
        frame = json.dumps(
            {"type": "send", "conversation": conversation, "content": content, "model": MODEL, "ref": ref}
        )
        chat.bytes_at_send = self.bytes_received
        chat.sent_at = time.perf_counter()
        await self.connection.send(frame)
        return chat

    async def _read(self) -> None:
        async for message in self.connection:
            now = time.perf_counter()
            self.frames_received += 1
            frame = json.loads(message)
            kind = frame.get("type")
            if kind in ("delta", "snapshot", "done", "state"):
                chat = self.chats.get(frame.get("reply"))
                if chat is None:  # before its turn frame: keep it for when the turn arrives
                    self.early.setdefault(frame.get("reply"), []).append((frame, now))
                    continue
                self._dispatch(chat, frame, now)
            elif kind == "turn":
                chat = self.pending.pop(frame.get("ref"), None)
                if chat is None:
                    continue
                chat.turn_at = now
                chat.reply = frame["reply"]["id"]
                chat.conversation = frame["conversation"]
                self.chats[chat.reply] = chat
                self.by_conversation[chat.conversation] = chat
                if frame["reply"].get("status") != "streaming":  # refused at once (limit, no model)
                    chat.done = frame["reply"]
                    chat.done_at = now
                    _resolve(chat.finished)
                for early, at in self.early.pop(chat.reply, []):
                    self._dispatch(chat, early, at)
            elif kind == "title":
                chat = self.by_conversation.get(frame.get("conversation"))
                if chat is not None:
                    chat.title_at = now
                    _resolve(chat.titled)
            elif kind == "error":
                chat = self.pending.pop(str(frame.get("ref")), None)
                if chat is not None:
                    chat.error = frame
                    _resolve(chat.finished)

    def _dispatch(self, chat: Chat, frame: dict[str, Any], now: float) -> None:
        kind = frame["type"]
        if kind in ("delta", "snapshot"):
            chat.on_text(frame, now)
        elif kind == "done":
            if frame.get("seq") != chat.seq + 1:
                chat.out_of_order += 1
            chat.done = frame
            chat.done_at = now
            chat.bytes_at_done = self.bytes_received
            _resolve(chat.finished)

    async def close(self) -> None:
        await self.connection.close()
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def open_sockets(
    ws_url: str, cookies: list[str], *, origin: str, parallel: int = 25, timeout: float = 120.0
) -> list[ChatSocket]:
    """Open one socket per cookie, `parallel` handshakes at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one(cookie: str) -> ChatSocket:
        async with gate:
            return await ChatSocket.open(ws_url, cookie=cookie, origin=origin)

    async with asyncio.timeout(timeout):
        return list(await asyncio.gather(*(one(cookie) for cookie in cookies)))


async def close_sockets(sockets: list[ChatSocket]) -> None:
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)


# -- the double, read directly ---------------------------------------------------------------
@dataclass
class DirectChat:
    """One /api/chat stream read straight from the double, stamped like a Chat."""

    sent_at: float = 0.0
    first_at: float | None = None
    done_at: float | None = None
    tokens: int = 0
    bytes_received: int = 0
    eval_duration: int = 0
    text: str = ""
    arrivals: list[tuple[float, int]] = field(default_factory=list)

    @property
    def first_token_latency(self) -> float | None:
        return None if self.first_at is None else self.first_at - self.sent_at


async def direct_chat(
    base_url: str, content: str, *, keep_arrivals: bool = False, timeout: float = 120.0
) -> DirectChat:
    """Stream one chat reply from the double's /api/chat over a plain HTTP/1.1 connection."""
    address = urlsplit(base_url)
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": True}
    ).encode()
    head = (
        f"POST /api/chat HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    result = DirectChat()
    parts: list[str] = []
    have = 0
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(address.hostname, address.port, limit=2**22)
        try:
            result.sent_at = time.perf_counter()
            writer.write(head + body)
            headers = await reader.readuntil(b"\r\n\r\n")
            result.bytes_received += len(headers)
            if not headers.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the double answered {headers[:40]!r}")
            buffer = ""
            while True:
                size_line = await reader.readline()
                size = int(size_line.strip(), 16)
                chunk = await reader.readexactly(size + 2)
                result.bytes_received += len(size_line) + len(chunk)
                if size == 0:
                    break
                now = time.perf_counter()
                buffer += chunk[:-2].decode()  # json.loads is twice as fast on str as on bytes
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    part = json.loads(line)
                    token = part["message"]["content"]
                    if token:
                        result.tokens += 1
                        parts.append(token)
                        have += len(token)
                        if result.first_at is None:
                            result.first_at = now
                        if keep_arrivals:
                            result.arrivals.append((now, have))
                    if part.get("done"):
                        result.done_at = now
                        result.eval_duration = part.get("eval_duration", 0)
        finally:
            writer.close()
    result.text = "".join(parts)
    return result
