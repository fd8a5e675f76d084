"""Delivery of chat frames to sockets: this process's directly, other workers' by worker.

Every socket registers here by group (a conversation, a user). A frame is encoded once and
sent straight to this process's sockets in the group. With the in-memory channel layer that
is all: one process serves everyone.

With a shared layer (Redis, several workers) each process has one listener channel, and that
channel, not each socket, joins a group while the process has sockets in it. So:

- a low-rate frame (a turn, a state, the end of a reply, a title) goes to the group on the
  layer: one message per *worker* watching it, which fans it out to its own sockets (a copy
  that comes back to the sender is dropped);
- a stream delta goes to the sockets here and, on the layer, only to the other workers that
  watch the conversation. A reply and its page usually share a process (the page's socket
  started it), so the common case sends no delta through Redis at all.

channels-redis keeps all the channels of a process in one Redis key and pops it one message
at a time; sending a delta per socket through it lost frames at 100 streaming users on two
cores (docs/benchmarks.md, "Redis").

Every worker keeps a table of which other workers watch which conversations, so a reply
starting here knows at once where its deltas must go. A worker says `worker.watch` to all when
it gets its first socket in a group (a conversation, a user) and `worker.unwatch` when its
last one leaves; a new worker says `worker.hello` and the others answer with their lists;
every minute each worker sends its whole list again, and a worker not heard from for three
minutes (a dead one) is forgotten. A page that subscribes mid-reply asks for a snapshot after its worker's
announcement, through the same listener, so it lacks nothing; any gap left (a frame lost with
a worker) is closed by the page's `subscribe`.

The listener also serves other processes' requests about the replies generated here (Stop,
catch-up); chat/generation.py registers those handlers in `worker_handlers`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer

from webui.channels import listener_stop

logger = logging.getLogger(__name__)

WORKERS_GROUP = "chat.workers"  # every server process listens here
REFRESH_EVERY = 60.0  # seconds between two announcements of a worker's whole list
FORGET_AFTER = 3 * REFRESH_EVERY  # a worker silent this long is gone

_sockets: dict[str, set[Any]] = {}  # group -> this process's consumers in it
_remote: dict[str, set[str]] = {}  # group -> other workers' listener channels watching it
_heard: dict[str, float] = {}  # another worker's listener channel -> when it last said its list
_listener: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}
_channel: dict[asyncio.AbstractEventLoop, asyncio.Future] = {}  # the listener's channel name
# Messages the listener passes on, by type: chat/generation.py fills it (stop, snapshot).
worker_handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def shared() -> bool:
    """Return True when other processes may hold sockets (a channel layer other than in-memory)."""
    return not isinstance(get_channel_layer(), InMemoryChannelLayer)


async def worker_channel() -> str:
    """Return this process's listener channel, starting the listener once (per event loop)."""
    loop = asyncio.get_running_loop()
    future = _channel.get(loop)
    listener = _listener.get(loop)
    if future is None or (listener is not None and listener.done()):
        future = loop.create_future()
        _channel[loop] = future
        _listener[loop] = loop.create_task(_listen(future))
    return await asyncio.shield(future)


def _known(future: asyncio.Future | None) -> str | None:
    """Return the channel name a listener's future holds, if it got one."""
    if future is None or not future.done() or future.cancelled() or future.exception() is not None:
        return None
    return future.result()


def _me() -> str | None:
    """Return this process's listener channel when it is running (without starting it)."""
    return _known(_channel.get(asyncio.get_running_loop()))


# -- sockets -----------------------------------------------------------------------------------
async def group_add(group: str, consumer: Any) -> None:
    """Make `consumer` (a websocket consumer) receive the frames broadcast to `group`.

    The first socket here in a group makes this process join it on the layer and tell the
    other workers, so the replies they generate there send their deltas here too.
    """
    members = _sockets.setdefault(group, set())
    first = not members
    members.add(consumer)
    if first and shared():
        me = await worker_channel()
        layer = get_channel_layer()
        await layer.group_add(group, me)
        await layer.group_send(WORKERS_GROUP, {"type": "worker.watch", "channel": me, "groups": [group]})


async def group_discard(group: str, consumer: Any) -> None:
    members = _sockets.get(group)
    if members is None:
        return
    members.discard(consumer)
    if members:
        return
    del _sockets[group]
    me = _me() if shared() else None
    if me is None:
        return
    layer = get_channel_layer()
    await layer.group_discard(group, me)
    await layer.group_send(WORKERS_GROUP, {"type": "worker.unwatch", "channel": me, "groups": [group]})


async def _deliver(group: str, text: str) -> None:
    for consumer in tuple(_sockets.get(group, ())):
        try:
            await consumer.send(text_data=text)
        except Exception:  # a socket going away must not stop the others' frames
            logger.debug("dropping a frame for a closing socket", exc_info=True)


# -- frames ------------------------------------------------------------------------------------
async def broadcast(group: str, frame: dict[str, Any], *, stream: bool = False) -> None:
    """Send one frame, encoded once, to every socket in `group`, here and in other workers.

    `stream`: a delta, many a second. It goes on the layer only to the other workers known to
    watch the group; other frames go to the group itself, which reaches every worker in it
    even before the table here knows of it.
    """
    text = encode(frame)
    await _deliver(group, text)
    if not shared():
        return
    # Not started for this: a process with sockets in the group has its listener running, and
    # a frame sent while shutting down must not start another one.
    message = {"type": "worker.frame", "group": group, "text": text, "origin": _me()}
    layer = get_channel_layer()
    if not stream:
        await layer.group_send(group, message)
        return
    for channel in tuple(_remote.get(group, ())):
        try:
            await layer.send(channel, message)
        except ChannelFull:
            logger.warning("worker channel %s is full: forgotten", channel)
            _forget(channel)


# -- the other workers ---------------------------------------------------------------------------
def _watch(channel: str, groups: list[str]) -> None:
    _heard[channel] = time.monotonic()
    for group in groups:
        _remote.setdefault(group, set()).add(channel)


def _unwatch(channel: str, groups: list[str]) -> None:
    for group in groups:
        channels = _remote.get(group)
        if channels is not None:
            channels.discard(channel)
            if not channels:
                del _remote[group]


def _watch_list(me: str) -> dict[str, Any]:
    """Return the message naming every group this process has sockets in."""
    return {"type": "worker.watch", "channel": me, "groups": sorted(_sockets)}


def _forget(channel: str) -> None:
    _heard.pop(channel, None)
    _unwatch(channel, list(_remote))


async def _listen(ready: asyncio.Future) -> None:
    layer = get_channel_layer()
    try:
        me = await layer.new_channel()  # the default prefix: channels-redis reads one key per process
        await layer.group_add(WORKERS_GROUP, me)
        await layer.group_send(WORKERS_GROUP, {"type": "worker.hello", "channel": me})
    except BaseException as failure:
        ready.set_exception(failure)
        raise
    ready.set_result(me)
    # One process alone (the in-memory layer) has nobody to tell.
    refresher = asyncio.get_running_loop().create_task(_refresh(layer, me)) if shared() else None
    try:
        while True:
            message = await layer.receive(me)
            kind = message.get("type")
            if kind == "worker.exit":
                break
            try:
                await _serve(layer, me, kind, message)
            except Exception:  # one bad message must not end this process's listener
                logger.exception("worker message %r failed", kind)
    finally:
        if refresher is not None:
            refresher.cancel()
        await layer.group_discard(WORKERS_GROUP, me)


async def _serve(layer: Any, me: str, kind: str, message: dict[str, Any]) -> None:
    if kind == "worker.frame":
        if message.get("origin") != me:
            await _deliver(message["group"], message["text"])
        return
    channel = message.get("channel")
    if channel == me:  # our own announcement, back from WORKERS_GROUP
        return
    if kind == "worker.watch":
        _watch(channel, message.get("groups") or [])
    elif kind == "worker.unwatch":
        _unwatch(channel, message.get("groups") or [])
    elif kind == "worker.hello":
        await layer.send(channel, _watch_list(me))
    elif (handler := worker_handlers.get(kind)) is not None:
        await handler(message)


async def _refresh(layer: Any, me: str) -> None:
    """Say this process's list again now and then; forget workers gone silent.

    Group memberships are renewed too: channels-redis forgets a member after `group_expiry`
    (a day), and a worker lives longer than that.
    """
    while True:
        await asyncio.sleep(REFRESH_EVERY)
        await layer.group_send(WORKERS_GROUP, _watch_list(me))
        for group in (WORKERS_GROUP, *tuple(_sockets)):
            await layer.group_add(group, me)
        silent_since = time.monotonic() - FORGET_AFTER
        for channel in [channel for channel, heard in _heard.items() if heard < silent_since]:
            _forget(channel)


async def listener_shutdown() -> None:
    """End this process's listener (tests, shutdown)."""
    loop = asyncio.get_running_loop()
    await listener_stop(_listener.pop(loop, None), _known(_channel.pop(loop, None)))
