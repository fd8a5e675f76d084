"""Long operations (pull, push, create) run as background tasks in the server process.

Each operation is an `Operation` row plus, while it runs, an `OperationRun` in this process's
registry holding the live progress. A task iterates the gateway's progress stream; a ticker
beside it sends at most one frame per FRAME_INTERVAL to the `models` group (always the final
one) and saves the snapshot to the database every SAVE_INTERVAL, which doubles as the
heartbeat `operations_mark_failed` looks at after a restart. Asking for an operation that is
already running (same kind, same model, same server) joins it: Ollama gets one request.

Each operation runs on one server of the fleet; "every server" starts one per server. A cancel
reaches the operation wherever it runs: the process that runs it listens on the channel-layer
group WORKERS_GROUP (as chat generation does), and the one asking waits for the row to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from models_admin.models import AuditEntry, Operation
from models_admin.names import model_name_parse
from models_admin.services.audit import audit_record
from models_admin.services.events import broadcast_models_changed, broadcast_operation
from models_admin.services.progress import OperationRun, snapshot_base
from webui import fleet
from webui.channels import listener_stop
from webui.ollama import OllamaError, ProgressResponse

logger = logging.getLogger(__name__)

FRAME_INTERVAL = 0.2  # seconds: at most ~5 progress frames per second per operation
SAVE_INTERVAL = 2.0  # seconds between progress snapshots (and heartbeats) in the database
CANCEL_WAIT = 5.0  # seconds a cancel waits for the task to wind down
WORKERS_GROUP = "models.workers"  # every process running an operation listens here for cancels

StreamFactory = Callable[[], AsyncIterator[ProgressResponse]]


def operation_snapshot(operation: Operation) -> dict[str, Any]:
    """Return an operation's snapshot: live from this process if it runs here, else from the row."""
    run = _running.get(operation.pk)
    if run is not None:
        return run.snapshot()
    saved = dict(operation.progress or {})
    base = snapshot_base(
        operation_id=operation.pk,
        kind=operation.kind,
        model=operation.model,
        source=operation.source,
        username=operation.user.get_username() if operation.user else "",
        status=operation.status,
        started_at=operation.started_at,
        finished_at=operation.finished_at,
        error=operation.error,
        server=operation.server,
    )
    return {
        "status_text": "",
        "completed": 0,
        "total": 0,
        "percent": None,
        "speed": None,
        "eta": None,
        "layers": [],
        **{key: value for key, value in saved.items() if key not in base},
        **base,
    }


# -- the registry of this process --------------------------------------------------------
_running: dict[int, OperationRun] = {}  # by operation id
_by_key: dict[str, OperationRun] = {}  # by "kind:server:canonical model", reserved before the row exists
_listener: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}
_listener_channel: dict[asyncio.AbstractEventLoop, str] = {}


def operations_running_here() -> list[OperationRun]:
    """Return the operations whose tasks run in this process."""
    return list(_running.values())


async def _operation_start(
    *,
    kind: str,
    name: str,
    source: str = "",
    user_id: int | None,
    username: str,
    server: fleet.Server,
    stream: Callable[[fleet.Server], AsyncIterator[ProgressResponse]],
) -> tuple[dict[str, Any], bool]:
    """Start an operation on `server` as a task on the running loop, or join the same one running.

    Returns the snapshot and whether it was joined.
    """
    _ensure_worker_listener()
    key = f"{kind}:{server.url}:{model_name_parse(name).key}"
    existing = _by_key.get(key)
    if existing is not None:
        await existing.ready.wait()
        if existing.id is not None:
            await audit_record(
                user_id=user_id, action=kind, model=name, ok=True, detail=f"joined #{existing.id}"
            )
            return existing.snapshot(), True
    run = OperationRun(
        kind=kind,
        model=name,
        source=source,
        user_id=user_id,
        username=username,
        language=translation.get_language(),
        server=server.name,
    )
    _by_key[key] = run  # reserved synchronously: a second request arriving now joins this one
    try:
        operation = await Operation.objects.acreate(
            kind=kind, model=name, source=source, user_id=user_id, server=server.name
        )
    except BaseException:
        _by_key.pop(key, None)
        run.ready.set()
        raise
    run.id = operation.pk
    run.started_at = operation.started_at
    _running[run.id] = run
    run.ready.set()
    # Not tied to the request or the socket: the task lives until the operation ends. It starts
    # from an empty context: a view's context holds asgiref's executor for that one request,
    # which is gone once the response is sent, and the task's ORM calls would fail with it.
    run.task = asyncio.get_running_loop().create_task(
        _operation_run(run, key, lambda: stream(server)),
        name=f"operation-{run.id}",
        context=contextvars.Context(),
    )
    detail = f"started #{run.id}" + (f" from {source}" if source else "") + await _on(server)
    await audit_record(user_id=user_id, action=kind, model=name, ok=True, detail=detail)
    await broadcast_operation(run.snapshot())
    return run.snapshot(), False


async def _operation_run(run: OperationRun, key: str, stream: StreamFactory) -> None:
    ticker = asyncio.create_task(_operation_tick(run))
    try:
        async for part in stream():
            if run.cancel_requested:  # a cancellation lost on the way still ends the operation
                raise asyncio.CancelledError
            run.apply(part)
        if run.status_text != "success":
            with translation.override(run.language):
                run.finish(
                    Operation.Status.FAILED, error=_("Ollama ended the stream without reporting success.")
                )
        else:
            run.finish(Operation.Status.SUCCEEDED)
    except asyncio.CancelledError:
        run.finish(Operation.Status.CANCELLED)
    except OllamaError as error:
        logger.warning("%s %s on Ollama server %s failed: %s", run.kind, run.model, run.server, error)
        with translation.override(run.language):
            run.finish(Operation.Status.FAILED, error=error.user_message)
    except Exception as error:  # a bug must not leave the operation "running" forever
        logger.exception("operation %s failed unexpectedly", run.id)
        run.finish(Operation.Status.FAILED, error=f"{type(error).__name__}: {error}")
    finally:
        # Leave the registry before the first await, so nobody joins a finished operation.
        _running.pop(run.id, None)
        if _by_key.get(key) is run:
            del _by_key[key]
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await _operation_conclude(run)


async def _operation_conclude(run: OperationRun) -> None:
    snapshot = run.snapshot()
    try:
        await Operation.objects.filter(pk=run.id).aupdate(
            status=run.status,
            finished_at=run.finished_at,
            updated_at=run.finished_at,
            error=run.error,
            progress=snapshot,
        )
        ok = run.status == Operation.Status.SUCCEEDED
        if run.status != Operation.Status.CANCELLED:  # the cancel itself is audited by who asked
            await audit_record(
                user_id=run.user_id,
                action=run.kind,
                model=run.model,
                ok=ok,
                detail=f"#{run.id} succeeded" if ok else f"#{run.id} {run.error or run.status}",
            )
    except Exception:
        logger.exception("could not record the end of operation %s", run.id)
    await broadcast_operation(snapshot)
    if run.status == Operation.Status.SUCCEEDED:
        fleet.models_changed()
        await broadcast_models_changed()


async def _operation_tick(run: OperationRun) -> None:
    """Send throttled progress frames and save the snapshot (the heartbeat) every few seconds."""
    last_save = time.monotonic()
    while True:
        await asyncio.sleep(FRAME_INTERVAL)
        if run.dirty:
            run.dirty = False
            await broadcast_operation(run.snapshot())
        if time.monotonic() - last_save >= SAVE_INTERVAL:
            last_save = time.monotonic()
            try:
                await Operation.objects.filter(pk=run.id, status=Operation.Status.RUNNING).aupdate(
                    progress=run.snapshot(), updated_at=timezone.now()
                )
            except Exception:
                logger.exception("could not save progress of operation %s", run.id)


# -- the verbs -----------------------------------------------------------------------------
async def _on(server: fleet.Server) -> str:
    """Return " on <server>" for audit details when the fleet has several servers."""
    return f" on {server.name}" if len(await fleet.servers()) > 1 else ""


async def model_pull(
    *, user_id: int | None, username: str, name: str, server: fleet.Server | None = None
) -> tuple[dict[str, Any], bool]:
    """Pull a model on `server` (default: the first) in the background, or join the pull already
    running there; return (snapshot, joined)."""
    return await _operation_start(
        kind=Operation.Kind.PULL,
        name=name,
        user_id=user_id,
        username=username,
        server=server or await fleet.primary(),
        stream=lambda target: target.gateway().pull(name),
    )


async def model_push(
    *, user_id: int | None, username: str, name: str, server: fleet.Server | None = None
) -> tuple[dict[str, Any], bool]:
    """Push a local model to its registry in the background (from a server that has it)."""
    return await _operation_start(
        kind=Operation.Kind.PUSH,
        name=name,
        user_id=user_id,
        username=username,
        server=server or await fleet.primary(name),
        stream=lambda target: target.gateway().push(name),
    )


async def model_create(
    *,
    user_id: int | None,
    username: str,
    name: str,
    base: str,
    system: str = "",
    parameters: dict[str, Any] | None = None,
    server: fleet.Server | None = None,
) -> tuple[dict[str, Any], bool]:
    """Create `name` from `base` with a system prompt and parameters, in the background, on a
    server that has the base."""
    return await _operation_start(
        kind=Operation.Kind.CREATE,
        name=name,
        source=base,
        user_id=user_id,
        username=username,
        server=server or await fleet.primary(base),
        stream=lambda target: target.gateway().create(
            model=name, from_=base, system=system or None, parameters=parameters
        ),
    )


async def operation_cancel(*, user_id: int | None, operation_id: int) -> bool:
    """Cancel a running operation, in this process or another (its request to Ollama closes).

    Returns False when it is not running (any more) anywhere.
    """
    run = _running.get(operation_id)
    if run is not None and run.task is not None and not run.task.done():
        if not run.cancel_requested:
            run.cancel_requested = True
            run.task.cancel()
        await asyncio.wait([run.task], timeout=CANCEL_WAIT)
        kind, model = run.kind, run.model
    else:
        operation = await Operation.objects.filter(pk=operation_id).afirst()
        if not (operation and await _cancel_elsewhere(operation)):
            await audit_record(
                user_id=user_id,
                action=AuditEntry.Action.CANCEL,
                model=operation.model if operation else f"#{operation_id}",
                ok=False,
                detail=f"#{operation_id} is not running",
            )
            return False
        kind, model = operation.kind, operation.model
    await audit_record(
        user_id=user_id,
        action=AuditEntry.Action.CANCEL,
        model=model,
        ok=True,
        detail=f"{kind} #{operation_id}",
    )
    return True


async def _cancel_elsewhere(operation: Operation) -> bool:
    """Ask every process to cancel `operation`; return whether it ended within CANCEL_WAIT."""
    fresh = timezone.now() - timedelta(seconds=settings.STREAM_STALE_AFTER)
    if operation.status != Operation.Status.RUNNING or operation.updated_at < fresh:
        return False  # finished, or its process died (startup recovery will fail it)
    layer = get_channel_layer()
    if layer is None:
        return False
    await layer.group_send(WORKERS_GROUP, {"type": "operation.cancel", "operation": operation.pk})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CANCEL_WAIT
    while loop.time() < deadline:
        await asyncio.sleep(0.1)  # the other process writes the row when its task has ended
        if not await Operation.objects.filter(pk=operation.pk, status=Operation.Status.RUNNING).aexists():
            return True
    return False


async def _listen_for_workers() -> None:
    """Cancel operations of this process that another process was asked to cancel."""
    layer = get_channel_layer()
    # The default prefix: channels-redis reads one queue per process for all its channels.
    channel = await layer.new_channel()
    _listener_channel[asyncio.get_running_loop()] = channel
    await layer.group_add(WORKERS_GROUP, channel)
    try:
        while True:
            message = await layer.receive(channel)
            if message.get("type") == "worker.exit":
                break
            if message.get("type") != "operation.cancel":
                continue
            run = _running.get(message.get("operation"))
            if run is not None and run.task is not None and not run.task.done() and not run.cancel_requested:
                logger.info("cancelling %s #%s at the request of another process", run.kind, run.id)
                run.cancel_requested = True
                run.task.cancel()
    finally:
        with contextlib.suppress(Exception):
            await layer.group_discard(WORKERS_GROUP, channel)


def _ensure_worker_listener() -> None:
    """Start this process's listener once per event loop (needs a channel layer)."""
    if get_channel_layer() is None:
        return
    loop = asyncio.get_running_loop()
    task = _listener.get(loop)
    if task is None or task.done():
        _listener[loop] = loop.create_task(_listen_for_workers(), context=contextvars.Context())


# -- reading -------------------------------------------------------------------------------
@sync_to_async
def _operations_running_rows() -> list[Operation]:
    # A row whose heartbeat stopped belongs to a process that died (perhaps one restarted too
    # quickly for the startup check to call it stale): fail it rather than show it forever.
    operations_mark_failed()
    return list(
        Operation.objects.filter(status=Operation.Status.RUNNING)
        .select_related("user")
        .order_by("started_at")
    )


async def operations_current() -> list[dict[str, Any]]:
    """Return snapshots of every running operation, live where it runs in this process."""
    # Snapshots are taken here on the loop, never in a thread, as the tasks mutate them.
    return [operation_snapshot(operation) for operation in await _operations_running_rows()]


def operations_recent(*, limit: int = 20) -> list[Operation]:
    """Return the latest finished operations, newest first."""
    return list(
        Operation.objects.exclude(status=Operation.Status.RUNNING)
        .select_related("user")
        .order_by("-started_at")[:limit]
    )


operations_recent_async = sync_to_async(operations_recent)


def operations_mark_failed() -> int:
    """Mark operations left running by a dead process (stale heartbeat) as failed; return how many."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.STREAM_STALE_AFTER)
    return Operation.objects.filter(status=Operation.Status.RUNNING, updated_at__lt=stale).update(
        status=Operation.Status.FAILED,
        error=_("server restarted"),
        finished_at=now,
        updated_at=now,
    )


async def operations_drain(*, cancel: bool = False, timeout: float = 10.0) -> None:
    """Wait for every operation task of this process to end (cancelling them first if asked)."""
    tasks = [run.task for run in _running.values() if run.task is not None and not run.task.done()]
    if cancel:
        for task in tasks:
            task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    loop = asyncio.get_running_loop()
    await listener_stop(_listener.pop(loop, None), _listener_channel.pop(loop, None))
