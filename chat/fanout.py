"""Delivery of chat frames to sockets: this process's directly, other workers' by worker.

Every socket registers here by group (a conversation, a user). A frame is encoded once and
sent straight to this process's sockets in the group. With the in-memory channel layer that
is all: one process serves everyone.

With a shared layer (Redis, several workers) each process has one listener channel, and that
channel, not each socket, joins a group while the process has sockets in it. So:

- a low-rate frame (a turn, a state, the end of a reply, a title) goes to the group on the
  layer: one message per *worker* watching it, which fans it out to its own sockets (a copy
  that comes back to the sender is dropped);
- a stream delta goes to the sockets here and, on the layer, only to the workers known to be
  watching the reply (`Generation.remote`): a reply and its page usually share a process (the
  page's socket started it), so the common case sends nothing through Redis at all.

channels-redis keeps all the channels of a process in one Redis key and pops it one message
at a time; sending a delta per socket through it lost frames at 100 streaming users on two
cores (docs/benchmarks.md, "Redis"). A worker learns who watches its replies from two low-rate
messages: `worker.generating` (to the conversation's group when a reply starts; the workers
in it answer `worker.watch`) and `worker.watch` sent to every worker when a process gets its
first socket on a conversation. A watcher learned late misses nothing: its page catches up
from a snapshot, asked after the announcement and answered by the same listener.

The listener also serves other processes' requests about the replies generated here (Stop,
catch-up); chat/generation.py registers those handlers in `worker_handlers`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer

from webui.channels import listener_stop

logger = logging.getLogger(__name__)

WORKERS_GROUP = "chat.workers"  # every server process listens here
_sockets: dict[str, set[Any]] = {}  # group -> this process's consumers in it
_listener: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}
_channel: dict[asyncio.AbstractEventLoop, asyncio.Future] = {}  # the listener's channel name
# Messages the listener passes on, by type: chat/generation.py fills it (stop, snapshot, watch).
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


async def group_add(group: str, consumer: Any, *, announce: bool = False) -> None:
    """Make `consumer` (a websocket consumer) receive the frames broadcast to `group`.

    `announce`: tell the other workers this process now watches the group, so a reply they are
    generating there sends its deltas here too (conversation groups).
    """
    members = _sockets.setdefault(group, set())
    first = not members
    members.add(consumer)
    if first and shared():
        me = await worker_channel()
        layer = get_channel_layer()
        await layer.group_add(group, me)
        if announce:
            await layer.group_send(WORKERS_GROUP, {"type": "worker.watch", "group": group, "channel": me})


async def group_discard(group: str, consumer: Any) -> None:
    members = _sockets.get(group)
    if members is None:
        return
    members.discard(consumer)
    if members:
        return
    del _sockets[group]
    me = _me() if shared() else None
    if me is not None:
        await get_channel_layer().group_discard(group, me)


def watching(group: str) -> bool:
    return bool(_sockets.get(group))


async def _deliver(group: str, text: str) -> None:
    for consumer in tuple(_sockets.get(group, ())):
        try:
            await consumer.send(text_data=text)
        except Exception:  # a socket going away must not stop the others' frames
            logger.debug("dropping a frame for a closing socket", exc_info=True)


async def broadcast(group: str, frame: dict[str, Any], *, workers: set[str] | None = None) -> None:
    """Send one frame, encoded once, to every socket in `group`, here and in other workers.

    `workers`: the other workers' listener channels to send it to (a reply's known watchers),
    instead of every worker in the group on the layer. A channel the layer refuses (a dead
    worker's, full) is dropped from the set.
    """
    text = encode(frame)
    await _deliver(group, text)
    if not shared():
        return
    # Not started for this: a process with sockets in the group has its listener running, and
    # a frame sent while shutting down must not start another one.
    message = {"type": "worker.frame", "group": group, "text": text, "origin": _me()}
    layer = get_channel_layer()
    if workers is None:
        await layer.group_send(group, message)
        return
    for channel in tuple(workers):
        try:
            await layer.send(channel, message)
        except ChannelFull:
            logger.warning("worker channel %s is full: no more frames for it", channel)
            workers.discard(channel)


async def announce_generating(group: str) -> None:
    """Ask the workers watching `group` to say so: a reply starts here."""
    if shared():
        me = await worker_channel()
        await get_channel_layer().group_send(
            group, {"type": "worker.generating", "group": group, "channel": me}
        )


async def _listen(ready: asyncio.Future) -> None:
    layer = get_channel_layer()
    try:
        me = await layer.new_channel()  # the default prefix: channels-redis reads one key per process
        await layer.group_add(WORKERS_GROUP, me)
    except BaseException as failure:
        ready.set_exception(failure)
        raise
    ready.set_result(me)
    refresher = asyncio.get_running_loop().create_task(_refresh_memberships(layer, me))
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
        refresher.cancel()
        await layer.group_discard(WORKERS_GROUP, me)


REFRESH_EVERY = 3600.0  # seconds; channels-redis forgets a group member after `group_expiry` (a day)


async def _refresh_memberships(layer: Any, me: str) -> None:
    """Join this process's groups again now and then: a worker lives longer than a membership."""
    while True:
        await asyncio.sleep(REFRESH_EVERY)
        for group in (WORKERS_GROUP, *tuple(_sockets)):
            await layer.group_add(group, me)


async def _serve(layer: Any, me: str, kind: str, message: dict[str, Any]) -> None:
    if kind == "worker.frame":
        if message.get("origin") != me:
            await _deliver(message["group"], message["text"])
    elif kind == "worker.generating":
        if message.get("channel") != me and watching(message["group"]):
            answer = {"type": "worker.watch", "group": message["group"], "channel": me}
            await layer.send(message["channel"], answer)
    elif message.get("channel") != me and (handler := worker_handlers.get(kind)) is not None:
        await handler(message)


async def listener_shutdown() -> None:
    """End this process's listener (tests, shutdown)."""
    loop = asyncio.get_running_loop()
    await listener_stop(_listener.pop(loop, None), _known(_channel.pop(loop, None)))
