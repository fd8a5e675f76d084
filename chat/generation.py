"""Server-side generation of replies, independent of any websocket.

A `Generation` is an asyncio task in the server process that streams Ollama's /api/chat,
keeps the text in memory, sends coalesced frames to the conversation's channel-layer group
and checkpoints the text to the database every few seconds. Sockets come and go (reloads,
second tabs); they subscribe to the group and catch up from a snapshot, so closing a tab
never stops a reply and no token is lost, duplicated or reordered.

Frames carry only new text and the offset where it starts, plus a sequence number; the page
appends `text[have - offset:]` and asks for a snapshot when it sees a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.utils.translation import gettext as _

from chat import services
from chat.models import Message
from webui.ollama import OllamaError, gateway

logger = logging.getLogger(__name__)

_local: dict[int, Generation] = {}
_background: set[asyncio.Task] = set()
WORKERS_GROUP = "chat.workers"  # every server process listens here for stop/snapshot requests
_listener: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def conversation_group(conversation_id: int) -> str:
    return f"chat.conv.{conversation_id}"


def user_group(user_id: int) -> str:
    return f"chat.user.{user_id}"


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


async def broadcast(group: str, frame: dict[str, Any]) -> None:
    """Send one frame, encoded once, to every socket in `group`."""
    await get_channel_layer().group_send(group, {"type": "chat.frame", "text": encode(frame)})


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
    _flush_handle: asyncio.TimerHandle | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
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
            await broadcast(self.group, {"type": "state", "reply": self.reply_id, "state": state})

    async def flush(self) -> None:
        """Send the text received since the last frame, if any, as one delta frame."""
        async with self._lock:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
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
            await broadcast(self.group, frame)

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

    def _schedule_flush(self) -> None:
        """Coalesce tokens: the first goes out at once, the rest at most every interval."""
        if self._flush_handle is not None:
            return
        wait = settings.STREAM_FRAME_INTERVAL - (time.monotonic() - self._last_flush)
        if wait <= 0:
            _spawn(self.flush())
            self._last_flush = time.monotonic()
            return
        self._flush_handle = asyncio.get_running_loop().call_later(wait, self._timer_fired)

    def _timer_fired(self) -> None:
        self._flush_handle = None
        _spawn(self.flush())

    # -- the task -----------------------------------------------------------------------
    async def run(self) -> None:
        status = Message.Status.COMPLETE
        error = error_kind = ""
        stats: dict[str, Any] = {}
        try:
            request = await services.achat_request(reply_id=self.reply_id)
            await broadcast(self.group, {"type": "state", "reply": self.reply_id, "state": "waiting"})
            watchdog = _spawn(self._loading_watchdog(request["model"]))
            last_checkpoint = time.monotonic()
            try:
                async for chunk in gateway().chat_stream(**request):
                    message = chunk.message
                    if message.thinking:
                        self.thinking.append(message.thinking)
                        self.thinking_length += len(message.thinking)
                        if self.state != "thinking" and not self.content_length:
                            await self.set_state("thinking")
                    if message.content:
                        self.content.append(message.content)
                        self.content_length += len(message.content)
                        if self.state != "streaming":
                            await self.set_state("streaming")
                    if chunk.done:
                        stats = {
                            "prompt_eval_count": chunk.prompt_eval_count,
                            "eval_count": chunk.eval_count,
                            "eval_duration": chunk.eval_duration,
                            "total_duration": chunk.total_duration,
                            "done_reason": chunk.done_reason or "",
                        }
                    if self.seq == 0 and self._last_flush == 0.0:
                        await self.flush()  # the first token goes out at once
                    else:
                        self._schedule_flush()
                    now = time.monotonic()
                    if now - last_checkpoint >= settings.STREAM_CHECKPOINT_INTERVAL:
                        last_checkpoint = now
                        await services.areply_checkpoint(
                            reply_id=self.reply_id, content=self.text(), thinking=self.thinking_text()
                        )
            finally:
                watchdog.cancel()
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

    async def _finish(self, status: str, error: str, error_kind: str, stats: dict[str, Any]) -> None:
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
        await broadcast(self.group, done)
        if status == Message.Status.COMPLETE:
            _spawn(
                title_generate(conversation_id=self.conversation_id, user_id=self.user_id, model=self.model)
            )

    async def _loading_watchdog(self, model: str) -> None:
        """Tell the page the model is loading when the first token is slow and it isn't loaded."""
        await asyncio.sleep(0.8)
        if self.state != "waiting":
            return
        with contextlib.suppress(OllamaError):
            loaded = {running.model for running in await gateway().ps()}
            if self.state == "waiting" and not _model_in(model, loaded):
                await self.set_state("loading")


def _model_in(model: str, names: set[str]) -> bool:
    wanted = model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"
    return wanted.lower() in {name.lower() for name in names if name}


async def _listen_for_workers() -> None:
    """Serve other processes' requests about replies generated here (Stop, catch-up)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()  # the default prefix: channels-redis reads one queue per process
    await layer.group_add(WORKERS_GROUP, channel)
    try:
        while True:
            message = await layer.receive(channel)
            generation = _local.get(message.get("reply"))
            if generation is None:
                continue
            if message["type"] == "worker.stop":
                generation_stop(generation.reply_id)
            elif message["type"] == "worker.snapshot":
                frame = generation.snapshot()
                frame.update(snapshot_trim(frame, message.get("have") or [0, 0]))
                await layer.send(message["channel"], {"type": "chat.frame", "text": encode(frame)})
    finally:
        await layer.group_discard(WORKERS_GROUP, channel)


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


def ensure_worker_listener() -> None:
    """Start this process's listener once (per event loop)."""
    loop = asyncio.get_running_loop()
    task = _listener.get(loop)
    if task is None or task.done():
        _listener[loop] = loop.create_task(_listen_for_workers())


async def request_remote_stop(reply_id: int) -> None:
    await get_channel_layer().group_send(WORKERS_GROUP, {"type": "worker.stop", "reply": reply_id})


async def request_remote_snapshot(reply_id: int, *, channel: str, have: list[int]) -> None:
    message = {"type": "worker.snapshot", "reply": reply_id, "channel": channel, "have": have}
    await get_channel_layer().group_send(WORKERS_GROUP, message)


def generation_start(*, reply: Message, user_id: int) -> Generation:
    """Start streaming `reply` in this process; it outlives the socket that asked for it."""
    ensure_worker_listener()
    generation = Generation(
        reply_id=reply.id, conversation_id=reply.conversation_id, user_id=user_id, model=reply.model
    )
    _local[reply.id] = generation
    generation.task = _spawn(generation.run())
    return generation


async def generation_drain(timeout: float = 10.0) -> None:
    """Wait for every running generation and title task of this process to end."""
    while _background:
        await asyncio.wait(list(_background), timeout=timeout)
    listener = _listener.pop(asyncio.get_running_loop(), None)
    if listener is not None:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


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


async def title_generate(*, conversation_id: int, user_id: int, model: str) -> None:
    """Ask the model for a short title after the first reply; keep the fallback on failure."""
    exchange = await services.afirst_exchange(conversation_id=conversation_id)
    if not exchange:
        return
    conversation = await services.Conversation.objects.only("title").aget(pk=conversation_id)
    prompt = (
        "Write a title of at most six words for this conversation, in the language of the "
        "user's message. Reply with the title only, no quotes or punctuation at the end.\n\n"
        f"User: {exchange[0]['content']}\n\nAssistant: {exchange[1]['content'][:500]}"
    )
    try:
        response = await asyncio.wait_for(
            gateway().chat(
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
        conversation_id=conversation_id, old_title=conversation.title, title=title
    ):
        frame = {"type": "title", "conversation": conversation_id, "title": title}
        await broadcast(user_group(user_id), frame)


def _clean_title(text: str) -> str:
    import re

    text = re.sub(r"<think>.*?</think>", "", text, flags=re.S)
    line = next((line for line in text.strip().splitlines() if line.strip()), "")
    line = line.strip().strip("\"'`*#").strip()
    line = line.removeprefix("Title:").strip().rstrip(".。")
    return " ".join(line.split())[:80]
