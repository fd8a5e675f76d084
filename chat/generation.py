"""Server-side generation of replies, independent of any websocket.

A `Generation` is an asyncio task in the server process that streams Ollama's /api/chat,
keeps the text in memory, sends coalesced frames to the conversation's sockets (chat/fanout.py:
this process's directly, other workers' through the channel layer) and checkpoints the text to
the database every few seconds. Sockets come and go (reloads, second tabs); they subscribe to
the conversation and catch up from a snapshot, so closing a tab never stops a reply and no
token is lost, duplicated or reordered.

Frames carry only new text and the offset where it starts, plus a sequence number; the page
appends `text[have - offset:]` and asks for a snapshot when it sees a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.utils.translation import gettext as _

from chat import fanout, services
from chat.models import Message
from webui import fleet, logs
from webui.ollama import OllamaError

logger = logging.getLogger(__name__)

_local: dict[int, Generation] = {}
# Characters: a delta with fewer came from a stream slower than this server reads (50 tokens/s
# bring one or two tokens per frame interval; a fast Ollama sends hundreds of lines at once).
PAUSE_BELOW = 256
_background: set[asyncio.Task] = set()


def conversation_group(conversation_id: int) -> str:
    return f"chat.conv.{conversation_id}"


def user_group(user_id: int) -> str:
    return f"chat.user.{user_id}"


def _spawn(coroutine) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


@dataclass
class Generation:
    reply_id: int
    conversation_id: int
    user_id: int
    model: str = ""
    content: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    content_length: int = 0
    thinking_length: int = 0
    sent_content: int = 0  # how much of the text frames already carried
    sent_thinking: int = 0
    seq: int = 0
    state: str = "waiting"
    stop_requested: bool = False
    task: asyncio.Task | None = None
    route: fleet.ChatStream | None = None  # the stream from the fleet server answering
    request: dict[str, Any] | None = None  # the /api/chat arguments, when the turn read them
    title: str | None = None  # the conversation's title when the turn started
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _watchdog: asyncio.Task | None = None
    _last_flush: float = 0.0

    @property
    def group(self) -> str:
        return conversation_group(self.conversation_id)

    def text(self) -> str:
        if len(self.content) > 1:
            self.content[:] = ["".join(self.content)]
        return self.content[0] if self.content else ""

    def thinking_text(self) -> str:
        if len(self.thinking) > 1:
            self.thinking[:] = ["".join(self.thinking)]
        return self.thinking[0] if self.thinking else ""

    def snapshot(self) -> dict[str, Any]:
        """Return everything so far as one frame, for a socket that (re)subscribes."""
        return {
            "type": "snapshot",
            "reply": self.reply_id,
            "seq": self.seq,
            "state": self.state,
            "content": self.text(),
            "thinking": self.thinking_text(),
        }

    # -- frames -------------------------------------------------------------------------
    async def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            await fanout.broadcast(self.group, {"type": "state", "reply": self.reply_id, "state": state})

    async def flush(self) -> None:
        """Send the text received since the last frame, if any, as one delta frame."""
        async with self._lock:
            _unflushed.pop(self.reply_id, None)
            if self.content_length == self.sent_content and self.thinking_length == self.sent_thinking:
                return
            self.seq += 1
            frame: dict[str, Any] = {"type": "delta", "reply": self.reply_id, "seq": self.seq}
            if self.content_length > self.sent_content:
                frame["o"] = self.sent_content
                frame["c"] = self._tail(self.content, self.content_length - self.sent_content)
                self.sent_content = self.content_length
            if self.thinking_length > self.sent_thinking:
                frame["to"] = self.sent_thinking
                frame["t"] = self._tail(self.thinking, self.thinking_length - self.sent_thinking)
                self.sent_thinking = self.thinking_length
            self._last_flush = time.monotonic()
            await fanout.broadcast(self.group, frame, stream=True)

    @staticmethod
    def _tail(parts: list[str], length: int) -> str:
        """Return the last `length` characters of the joined parts, joining only what's needed."""
        collected: list[str] = []
        remaining = length
        for part in reversed(parts):
            if remaining <= 0:
                break
            if len(part) <= remaining:
                collected.append(part)
                remaining -= len(part)
            else:
                collected.append(part[len(part) - remaining :])
                remaining = 0
        collected.reverse()
        return "".join(collected)

    # -- the task -----------------------------------------------------------------------
    async def run(self) -> None:
        status = Message.Status.COMPLETE
        error = error_kind = ""
        stats: dict[str, Any] = {}
        logs.reply_context(self.reply_id)  # this task's log lines say reply=<id>
        try:
            await fanout.worker_channel()  # Stop and catch-up requests from other workers reach here
            request = self.request or await services.achat_request(reply_id=self.reply_id)
            self.request = request
            await fanout.broadcast(self.group, {"type": "state", "reply": self.reply_id, "state": "waiting"})
            # A timer, not a task: most replies start long before it fires.
            loading = asyncio.get_running_loop().call_later(
                LOADING_AFTER, self._watch_loading, request["model"]
            )
            last_checkpoint = time.monotonic()
            try:
                # One delta per network read: many tokens at once when Ollama is fast.
                self.route = fleet.chat_deltas(**request)  # a healthy server that has the model
                async for delta in self.route:
                    self._raise_if_stopped()
                    if delta.thinking:
                        self.thinking.append(delta.thinking)
                        self.thinking_length += len(delta.thinking)
                        if self.state != "thinking" and not self.content_length:
                            await self.set_state("thinking")
                    if delta.content:
                        self.content.append(delta.content)
                        self.content_length += len(delta.content)
                        if self.state != "streaming":
                            await self.set_state("streaming")
                    if (final := delta.final) is not None:
                        stats = {
                            "prompt_eval_count": final.prompt_eval_count,
                            "eval_count": final.eval_count,
                            "eval_duration": final.eval_duration,
                            "total_duration": final.total_duration,
                            "done_reason": final.done_reason or "",
                        }
                    now = time.monotonic()
                    if self.seq == 0 or now - self._last_flush >= frame_interval():
                        await self.flush()  # the first token at once, then one frame per interval
                    else:
                        _flush_soon(self)
                    if now - last_checkpoint >= settings.STREAM_CHECKPOINT_INTERVAL:
                        last_checkpoint = now
                        _checkpoint_soon(self)
                    small = len(delta.content) + len(delta.thinking) < PAUSE_BELOW
                    if delta.gathered and small and self.seq > 1:
                        # A stream slower than this loop: wait until the next frame is due, and
                        # the tokens arriving meanwhile come in one delta and one wakeup,
                        # not one each (with 200 streams at 50 tokens/s, 10,000 a second).
                        await asyncio.sleep(self._last_flush + frame_interval() - time.monotonic())
                    self._raise_if_stopped()
            finally:
                loading.cancel()
                if self._watchdog is not None:
                    self._watchdog.cancel()
                if self.route is not None:
                    # Close the request now (Stop, errors), not whenever the iterator is collected:
                    # a Stop may arrive while this loop awaits a frame or a checkpoint.
                    await self.route.aclose()
            if not stats:
                raise OllamaError(_("The reply ended before Ollama said it was done."), kind="dropped")
        except asyncio.CancelledError:
            status = Message.Status.STOPPED if self.stop_requested else Message.Status.INTERRUPTED
        except OllamaError as failure:
            status = Message.Status.ERROR
            error, error_kind = failure.user_message, failure.kind
            if failure.kind == "not_found":
                error_kind = "model_not_found"
        except Exception:  # keep serving; the user sees a readable error and can retry
            logger.exception("generation of reply %s failed", self.reply_id)
            status = Message.Status.ERROR
            error, error_kind = (
                _("Something went wrong on the server while generating this reply."),
                "internal",
            )
        await asyncio.shield(self._finish(status, error, error_kind, stats))

    def _raise_if_stopped(self) -> None:
        """End the stream if Stop (or shutdown) cancelled this task and the cancellation was lost.

        On Python 3.11, redis-py's `asyncio.wait_for` around a channel-layer send swallows a
        cancellation that arrives as the send completes: the reply would stream on to its end.
        """
        if self.stop_requested or asyncio.current_task().cancelling():
            raise asyncio.CancelledError

    async def _finish(self, status: str, error: str, error_kind: str, stats: dict[str, Any]) -> None:
        _checkpoints.pop(self.reply_id, None)
        try:
            await self.flush()
            await services.areply_finish(
                reply_id=self.reply_id,
                content=self.text(),
                thinking=self.thinking_text(),
                status=status,
                error=error,
                error_kind=error_kind,
                stats={key: value for key, value in stats.items() if value is not None},
            )
        finally:
            _local.pop(self.reply_id, None)
        done = {
            "type": "done",
            "reply": self.reply_id,
            "seq": self.seq + 1,
            "status": status,
            "length": self.content_length,
            "error": error,
            "error_kind": error_kind,
            **{
                key: stats.get(key)
                for key in ("eval_count", "eval_duration", "total_duration", "done_reason")
            },
        }
        await fanout.broadcast(self.group, done)
        if status == Message.Status.COMPLETE:
            title = {"conversation_id": self.conversation_id, "user_id": self.user_id, "model": self.model}
            if self.title is None or self.request is None:  # ask the database
                _spawn(title_generate(**title))
            elif exchange := self._first_exchange():
                _spawn(title_generate(**title, exchange=exchange, old_title=self.title))

    def _first_exchange(self) -> list[dict[str, str]] | None:
        """Return the first message and this reply when it answered the conversation's first.

        It did when its history holds one user message and nothing else but a system prompt:
        what `services.first_exchange` finds in the database, without asking it.
        """
        history = [message for message in self.request["messages"] if message["role"] != "system"]
        if len(history) != 1 or history[0]["role"] != Message.Role.USER or not self.content_length:
            return None
        return [
            {"role": Message.Role.USER.value, "content": history[0]["content"][:2000]},
            {"role": Message.Role.ASSISTANT.value, "content": self.text()[:2000]},
        ]

    def _watch_loading(self, model: str) -> None:
        if self.state == "waiting":
            self._watchdog = _spawn(self._loading_watchdog(model))

    async def _loading_watchdog(self, model: str) -> None:
        """Tell the page the model is loading when the first token is slow and it isn't loaded."""
        with contextlib.suppress(OllamaError):
            loaded = await _loaded_names(self.route)
            if self.state == "waiting" and not _model_in(model, loaded):
                await self.set_state("loading")


LOADING_AFTER = 0.8  # seconds without a first token before asking whether the model is loading
_loaded: dict[str, tuple[float, asyncio.Future]] = {}
LOADED_TTL = 1.0  # seconds one answer of /api/ps serves every waiting reply on that server


async def _loaded_names(route: fleet.ChatStream | None) -> set[str]:
    """Return the models loaded where `route` runs, asking each server at most once a second.

    When many replies wait at once (a burst, a slow server) each would ask /api/ps for itself,
    making the wait longer for all of them.
    """
    key = route.server.url if route is not None and route.server is not None else ""
    now = time.monotonic()
    known = _loaded.get(key)
    if known is None or now - known[0] > LOADED_TTL:
        known = (now, asyncio.ensure_future(fleet.loaded_names(route)))
        _loaded[key] = known
    return await asyncio.shield(known[1])


# Replies with text not sent yet, flushed by one task per event loop when their interval is
# up: with hundreds of streams a timer and a task per frame cost more than the frame itself.
_unflushed: dict[int, Generation] = {}
_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = weakref.WeakKeyDictionary()


STREAMS_PER_STRETCH = 50  # replies running at once for each STREAM_FRAME_INTERVAL of window
MAX_STRETCH = 2.0  # the window grows to at most twice STREAM_FRAME_INTERVAL


def frame_interval() -> float:
    """Return the time between two frames of a reply: STREAM_FRAME_INTERVAL, longer under load.

    A frame costs more than the tokens it carries (encoding, the ASGI send, the websocket
    framing); with 200 replies at 50 tokens/s, frames every 30 ms were a quarter of the
    server's CPU. Beyond 50 running replies the window stretches with their number, up to
    twice the setting, so a busy server sends fewer, fuller frames.
    """
    stretch = min(MAX_STRETCH, max(1.0, len(_local) / STREAMS_PER_STRETCH))
    return settings.STREAM_FRAME_INTERVAL * stretch


def _flush_soon(generation: Generation) -> None:
    """Send the generation's new text when its frame interval is up (the first tokens go at once)."""
    _unflushed.setdefault(generation.reply_id, generation)
    loop = asyncio.get_running_loop()
    task = _flushers.get(loop)
    if task is None or task.done():
        _flushers[loop] = _spawn(_flush_due())


async def _flush_due() -> None:
    """Tick three times per interval; flush the replies whose interval is up."""
    while _unflushed:
        interval = frame_interval()
        await asyncio.sleep(interval / 3)
        cutoff = time.monotonic() - interval
        for generation in [due for due in _unflushed.values() if due._last_flush <= cutoff]:
            await generation.flush()


# Replies due for a save of their partial text, saved together by one task per event loop:
# one database call for all of them instead of one per reply, and the streams never wait
# for it (with hundreds of streams, the database thread would hold them all up).
_checkpoints: dict[int, Generation] = {}
_checkpointers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = (
    weakref.WeakKeyDictionary()
)


def _checkpoint_soon(generation: Generation) -> None:
    _checkpoints[generation.reply_id] = generation
    loop = asyncio.get_running_loop()
    task = _checkpointers.get(loop)
    if task is None or task.done():
        _checkpointers[loop] = _spawn(_checkpoint_due())


async def _checkpoint_due() -> None:
    while _checkpoints:
        texts = {reply_id: (due.text(), due.thinking_text()) for reply_id, due in _checkpoints.items()}
        _checkpoints.clear()
        try:
            await services.areplies_checkpoint(texts=texts)
        except Exception:  # the stream goes on; its next checkpoint or its end saves the text
            logger.exception("checkpoint of %s replies failed", len(texts))


def _model_in(model: str, names: set[str]) -> bool:
    wanted = model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"
    return wanted.lower() in {name.lower() for name in names if name}


async def _on_stop(message: dict[str, Any]) -> None:
    generation_stop(message.get("reply"))


async def _on_snapshot(message: dict[str, Any]) -> None:
    """Answer another process's socket catching up on a reply generated here."""
    generation = _local.get(message.get("reply"))
    if generation is not None:
        frame = generation.snapshot()
        frame.update(snapshot_trim(frame, message.get("have") or [0, 0]))
        await get_channel_layer().send(
            message["channel"], {"type": "chat.frame", "text": fanout.encode(frame)}
        )


fanout.worker_handlers.update({"worker.stop": _on_stop, "worker.snapshot": _on_snapshot})


def snapshot_trim(snapshot: dict[str, Any], have: list[int]) -> dict[str, Any]:
    """Return the offset fields of a snapshot for a page that already holds `have`."""
    content, thinking = snapshot.pop("content"), snapshot.pop("thinking")
    have_content = max(0, min(int(have[0] or 0), len(content)))
    have_thinking = max(0, min(int(have[1] or 0), len(thinking)))
    return {
        "o": have_content,
        "c": content[have_content:],
        "to": have_thinking,
        "t": thinking[have_thinking:],
    }


async def request_remote_stop(reply_id: int) -> None:
    await get_channel_layer().group_send(fanout.WORKERS_GROUP, {"type": "worker.stop", "reply": reply_id})


async def request_remote_snapshot(reply_id: int, *, channel: str, have: list[int]) -> None:
    message = {"type": "worker.snapshot", "reply": reply_id, "channel": channel, "have": have}
    await get_channel_layer().group_send(fanout.WORKERS_GROUP, message)


def generation_start(
    *, reply: Message, user_id: int, request: dict[str, Any] | None = None, title: str | None = None
) -> Generation:
    """Start streaming `reply` in this process; it outlives the socket that asked for it.

    `request` (the /api/chat arguments) and `title` (the conversation's) save the task its own
    database calls when the caller has them, as a turn does.
    """
    generation = Generation(
        reply_id=reply.id,
        conversation_id=reply.conversation_id,
        user_id=user_id,
        model=reply.model,
        request=request,
        title=title,
    )
    _local[reply.id] = generation
    generation.task = _spawn(generation.run())
    return generation


async def generation_drain(timeout: float = 10.0) -> None:
    """Wait up to `timeout` for this process's generation and title tasks, then cancel the rest."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # A generation ending while we wait starts its title task: wait for those too.
    while pending := [task for task in _background if task.get_loop() is loop and not task.done()]:
        _done, still_running = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        if still_running:
            for task in still_running:
                logger.warning("generation task %r still running after %ss: cancelled", task, timeout)
                task.cancel()
            await asyncio.wait(still_running, timeout=timeout)
            break
    await fanout.listener_shutdown()


def generation_local(reply_id: int) -> Generation | None:
    return _local.get(reply_id)


def generation_is_local(reply_id: int) -> bool:
    return reply_id in _local


def generation_stop(reply_id: int) -> bool:
    """Cancel a running generation: the upstream request closes and the text is kept."""
    generation = _local.get(reply_id)
    if generation is None or generation.task is None:
        return False
    generation.stop_requested = True
    generation.task.cancel()
    return True


def generation_cancel_local(reply_id: int) -> None:
    """Cancel without keeping state (the reply is being deleted); safe from sync code."""
    generation = _local.get(reply_id)
    if generation is not None and generation.task is not None:
        generation.stop_requested = True
        try:
            generation.task.get_loop().call_soon_threadsafe(generation.task.cancel)
        except RuntimeError:
            pass


TITLE_CONCURRENCY = 4  # title requests one process sends at once; the others wait their turn
_title_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _title_slot() -> asyncio.Semaphore:
    """Return this loop's title semaphore.

    When many replies end together (a busy team), their title requests must not crowd out
    the replies still streaming, in this process or on the Ollama server.
    """
    loop = asyncio.get_running_loop()
    if loop not in _title_slots:
        _title_slots[loop] = asyncio.Semaphore(TITLE_CONCURRENCY)
    return _title_slots[loop]


async def title_generate(
    *,
    conversation_id: int,
    user_id: int,
    model: str,
    exchange: list[dict[str, str]] | None = None,
    old_title: str | None = None,
) -> None:
    """Ask the model for a short title after the first reply; keep the fallback on failure.

    `exchange` (the first message and reply) and `old_title` are read from the database unless
    the caller knows them; a title the user changed meanwhile is never replaced.
    """
    if exchange is None:
        exchange = await services.afirst_exchange(conversation_id=conversation_id)
    if not exchange:
        return
    if old_title is None:
        old_title = (await services.Conversation.objects.only("title").aget(pk=conversation_id)).title
    prompt = (
        "Write a title of at most six words for this conversation, in the language of the "
        "user's message. Reply with the title only, no quotes or punctuation at the end.\n\n"
        f"User: {exchange[0]['content']}\n\nAssistant: {exchange[1]['content'][:500]}"
    )
    try:
        async with _title_slot():
            response = await asyncio.wait_for(
                fleet.chat(
                    model=model,
                    messages=[{"role": "user", "content": prompt}],
                    options={"num_predict": 32, "temperature": 0.2},
                    think=False,  # always accepted, and keeps thinking models brief
                ),
                timeout=60,
            )
    except (TimeoutError, OllamaError):
        return
    title = _clean_title(response.message.content or "")
    if not title:
        return
    if await services.aconversation_set_title_if_unchanged(
        conversation_id=conversation_id, old_title=old_title, title=title
    ):
        frame = {"type": "title", "conversation": conversation_id, "title": title}
        await fanout.broadcast(user_group(user_id), frame)


def _clean_title(text: str) -> str:
    import re

    text = re.sub(r"<think>.*?</think>", "", text, flags=re.S)
    line = next((line for line in text.strip().splitlines() if line.strip()), "")
    line = line.strip().strip("\"'`*#").strip()
    line = line.removeprefix("Title:").strip().rstrip(".。")
    return " ".join(line.split())[:80]
