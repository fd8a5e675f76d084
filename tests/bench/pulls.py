"""Point 8: pulls watched by admins on the models dashboard socket (docs/websocket-models.md).

Five pulls start at once (one from each of five sockets) while twenty admin sockets watch the
`models` group. Every socket must see every pull's final `operation` frame; the server's CPU
over the pulls is divided by the progress lines the double sent (counted by reading one pull
of each model straight from the double). Between runs the models are deleted from the double,
so every run pulls the same layers afresh.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect

from tests.bench.figures import Figure
from tests.bench.harness import CpuWindow, Daphne, DoubleProcess, Environment

MODELS = ("mistral:latest", "gemma3:latest", "phi4:latest", "qwen3:latest", "llama3.2:1b")


def pull_figures() -> dict[str, Figure]:
    return {
        "pull_final": Figure(
            "8",
            "Pulls: sockets that saw all 5 pulls end (20 admin sockets)",
            "of 20",
            target="20",
            check=lambda value: value == 20,
        ),
        "pull_cpu": Figure(
            "8", "Pulls: server CPU per progress line from Ollama", "µs", digits=0, bound="server"
        ),
        "pull_frames": Figure("8", "Pulls: operation frames per socket (5 pulls)", "frames"),
        "pull_wall": Figure(
            "8", "Pulls: wall time, first pull sent → last socket saw the last end", "s", digits=2
        ),
    }


class ModelsSocket:
    """One dashboard page's socket: remembers each operation's last status and counts frames."""

    def __init__(self, connection):
        self.connection = connection
        self.status: dict[int, str] = {}
        self.started: asyncio.Queue = asyncio.Queue()
        self.frames = 0
        self.changed = asyncio.Event()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, ws_url: str, *, cookie: str, origin: str) -> ModelsSocket:
        connection = await connect(
            ws_url + "/ws/models/",
            origin=origin,
            additional_headers={"Cookie": f"sessionid={cookie}"},
            compression=None,
            ping_interval=None,
            max_size=16 * 1024 * 1024,
            open_timeout=60,
        )
        return cls(connection)

    async def _read(self) -> None:
        async for message in self.connection:
            frame = json.loads(message)
            kind = frame.get("type")
            if kind == "operation":
                self.frames += 1
                operation = frame["operation"]
                self.status[operation["id"]] = operation["status"]
                self.changed.set()
            elif kind == "started":
                operation = frame["operation"]
                self.status.setdefault(operation["id"], operation["status"])
                await self.started.put(operation["id"])
            elif kind == "error":
                await self.started.put(frame)

    def ended(self, operations: set[int]) -> bool:
        return all(self.status.get(operation, "running") != "running" for operation in operations)

    async def until_ended(self, operations: set[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.ended(operations):
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def close(self) -> None:
        await self.connection.close()
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


async def _double_request(url: str, method: str, path: str, body: dict[str, Any]) -> tuple[int, list[str]]:
    """Send one request to the double; return the status and the body's lines (chunks decoded)."""
    address = urlsplit(url)
    payload = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        async with asyncio.timeout(30):
            raw = await reader.read()
    finally:
        writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"chunked" in head.lower():
        body_bytes, rest_bytes = b"", rest
        while rest_bytes:
            size_line, _, rest_bytes = rest_bytes.partition(b"\r\n")
            size = int(size_line, 16)
            if not size:
                break
            body_bytes += rest_bytes[:size]
            rest_bytes = rest_bytes[size + 2 :]
        rest = body_bytes
    return status, [line for line in rest.decode().splitlines() if line.strip()]


async def _forget_models(url: str) -> None:
    for model in MODELS:
        await _double_request(url, "DELETE", "/api/delete", {"model": model})


async def _measure(
    environment: Environment, double: DoubleProcess, cookie: str, runs: int, figures, notes
) -> None:
    lines = 0
    for model in MODELS:  # how many progress lines a fresh pull of each model sends
        status, body = await _double_request(
            double.url, "POST", "/api/pull", {"model": model, "stream": True}
        )
        lines += len(body) if status == 200 else 0
    daphne = Daphne(environment, double).start()
    sockets: list[ModelsSocket] = []
    try:
        sockets = list(
            await asyncio.gather(
                *(ModelsSocket.open(daphne.ws_url, cookie=cookie, origin=daphne.url) for _ in range(20))
            )
        )
        for run in range(runs + 1):  # the first run warms the server up and is not counted
            await _forget_models(double.url)
            frames_before = [socket.frames for socket in sockets]
            window = CpuWindow(daphne.stats).start()
            started = time.perf_counter()
            for socket, model in zip(sockets, MODELS, strict=False):
                await socket.connection.send(json.dumps({"type": "pull", "model": model}))
            operations: set[int] = set()
            for socket in sockets[: len(MODELS)]:
                answer = await asyncio.wait_for(socket.started.get(), 30)
                if not isinstance(answer, int):
                    notes.append(f"point 8: a pull was refused: {answer}")
                    continue
                operations.add(answer)
            ended = await asyncio.gather(*(socket.until_ended(operations, 60) for socket in sockets))
            wall = time.perf_counter() - started
            window.stop()
            if run == 0:
                continue
            figures["pull_final"].add(sum(ended))
            figures["pull_cpu"].add(window.cpu / lines * 1e6 if lines else None)
            frames = [socket.frames - before for socket, before in zip(sockets, frames_before, strict=True)]
            figures["pull_frames"].add(sum(frames) / len(frames))
            figures["pull_wall"].add(wall)
        figures["pull_cpu"].note = f"{lines} progress lines per run"
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
        errors = daphne.errors_logged()
        if errors:
            notes.append(f"point 8: daphne logged {len(errors)} error lines, first: {errors[0][:200]}")
        daphne.stop()


def run(environment: Environment, runs: int, figures: dict[str, Figure], notes: list[str]) -> None:
    """Measure point 8 on a daphne of its own, against the unpaced double."""
    from tests.bench import world

    double = DoubleProcess().start(environment.root)
    try:
        admin = world.users_create(1, prefix="admin", staff=True)
        cookie = world.cookies_for(admin)[0]
        asyncio.run(_measure(environment, double, cookie, runs, figures, notes))
    finally:
        double.stop()
