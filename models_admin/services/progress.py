"""The live state of a running operation: bytes per layer, speed, time left, JSON snapshots."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from django.utils import timezone

from models_admin.models import Operation
from webui.ollama import ProgressResponse

SPEED_WINDOW = 3.0  # seconds of samples the speed is measured over


class Meter:
    """Bytes done and total, with speed over the last few seconds."""

    def __init__(self) -> None:
        self.total = 0
        self.completed = 0
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, *, total: int | None, completed: int | None, now: float) -> None:
        if total:
            self.total = total
        if completed is not None:
            self.completed = completed
        self._sample(now)

    def _sample(self, now: float) -> None:
        self._samples.append((now, self.completed))
        while len(self._samples) > 2 and now - self._samples[0][0] > SPEED_WINDOW:
            self._samples.popleft()

    def speed(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (first_time, first_done), (last_time, last_done) = self._samples[0], self._samples[-1]
        if last_time - first_time < 0.05 or last_done < first_done:
            return None
        return (last_done - first_done) / (last_time - first_time)

    def as_dict(self) -> dict[str, Any]:
        speed = self.speed()
        percent = min(100.0, self.completed * 100 / self.total) if self.total else None
        remaining = max(0, self.total - self.completed)
        eta = remaining / speed if speed and self.total and remaining else None
        return {
            "completed": self.completed,
            "total": self.total,
            "percent": round(percent, 1) if percent is not None else None,
            "speed": round(speed) if speed is not None else None,
            "eta": round(eta, 1) if eta is not None else None,
        }


class OperationRun:
    """The live side of one running operation in this process."""

    def __init__(
        self,
        *,
        kind: str,
        model: str,
        source: str,
        user_id: int | None,
        username: str,
        language: str,
        server: str = "",
    ):
        self.kind = kind
        self.model = model
        self.source = source
        self.server = server
        self.user_id = user_id
        self.username = username
        self.language = language
        self.id: int | None = None
        self.started_at = timezone.now()
        self.finished_at = None
        self.status = Operation.Status.RUNNING
        self.status_text = ""
        self.error = ""
        self.layers: dict[str, tuple[str, Meter]] = {}  # digest -> (status text, meter)
        self.task: asyncio.Task | None = None
        self.ready = asyncio.Event()  # set once the Operation row exists (joiners wait on it)
        self.cancel_requested = False
        self.dirty = True

    def apply(self, part: ProgressResponse) -> None:
        """Fold one progress line into the state."""
        now = time.monotonic()
        if part.status:
            self.status_text = part.status
        if part.digest:
            status, meter = self.layers.get(part.digest, ("", Meter()))
            meter.update(total=part.total, completed=part.completed, now=now)
            self.layers[part.digest] = (part.status or status, meter)
        self.dirty = True

    def finish(self, status: str, *, error: str = "") -> None:
        self.status = status
        self.error = error
        self.finished_at = timezone.now()
        self.dirty = True

    def snapshot(self) -> dict[str, Any]:
        """Return the JSON-ready state sent to sockets and saved to the database."""
        layers = []
        total = completed = 0
        for digest, (status, meter) in self.layers.items():
            total += meter.total
            completed += min(meter.completed, meter.total) if meter.total else meter.completed
            layers.append(
                {
                    "digest": digest,
                    "short": digest.removeprefix("sha256:")[:12],
                    "status": status,
                    **meter.as_dict(),
                }
            )
        overall = overall_progress(layers, total=total, completed=completed)
        return {
            **snapshot_base(
                operation_id=self.id,
                kind=self.kind,
                model=self.model,
                source=self.source,
                username=self.username,
                status=self.status,
                started_at=self.started_at,
                finished_at=self.finished_at,
                error=self.error,
                server=self.server,
            ),
            "status_text": self.status_text,
            **overall,
            "layers": layers,
        }


def overall_progress(layers: list[dict[str, Any]], *, total: int, completed: int) -> dict[str, Any]:
    speeds = [layer["speed"] for layer in layers if layer["speed"]]
    speed = sum(speeds) if speeds else None
    remaining = max(0, total - completed)
    return {
        "completed": completed,
        "total": total,
        "percent": round(min(100.0, completed * 100 / total), 1) if total else None,
        "speed": speed,
        "eta": round(remaining / speed, 1) if speed and remaining else None,
    }


def snapshot_base(
    *, operation_id, kind, model, source, username, status, started_at, finished_at, error, server=""
) -> dict[str, Any]:
    duration = (finished_at - started_at).total_seconds() if finished_at else None
    return {
        "id": operation_id,
        "kind": kind,
        "model": model,
        "source": source,
        "server": server,
        "user": username,
        "status": status,
        "running": status == Operation.Status.RUNNING,
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat() if finished_at else None,
        "duration": round(duration, 1) if duration is not None else None,
        "error": error,
    }
