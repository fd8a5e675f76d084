"""The chat page's one websocket: validates frames, calls services, relays stream frames.

The frame protocol (both ways) is documented in docs/websocket.md.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.http import Http404
from django.utils import translation
from django.utils.translation import gettext as _

from chat import fanout, generation, limits, services
from chat.models import Message
from webui.channels import ClosedSocketQuiet, join_session_group, scope_language, scope_user_approved
from webui.security import json_has_lone_surrogates

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401


def _id(frame: dict[str, Any], key: str) -> int:
    value = frame.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise services.ChatError(_("Missing or invalid %(field)s.") % {"field": key}, code="invalid")
    try:
        number = int(value)
    except ValueError:
        raise services.ChatError(
            _("Missing or invalid %(field)s.") % {"field": key}, code="invalid"
        ) from None
    if not 0 < number < 2**63:
        raise services.ChatError(_("Missing or invalid %(field)s.") % {"field": key}, code="invalid")
    return number


def _count(value: Any, field: str) -> int:
    """Return a length the page says it holds: a non-negative integer (missing = 0)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise services.ChatError(_("Missing or invalid %(field)s.") % {"field": field}, code="invalid")
    return value


def _text(frame: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = frame.get(key, "")
    if not isinstance(value, str) or (required and not value):
        if required:
            raise services.ChatError(_("Missing or invalid %(field)s.") % {"field": key}, code="invalid")
        return ""
    return value


async def _rate_check(user_id: int) -> None:
    """Count a message against the user's rate limit (raises ChatError when over it).

    With the in-process memory cache there is nothing to wait for: a thread hop per message
    cost more than the count. Redis is asked off the event loop.
    """
    if isinstance(caches["default"], LocMemCache):
        limits.message_rate_check(user_id=user_id)
    else:
        await limits.amessage_rate_check(user_id=user_id)


def message_frame(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "model": message.model,
        "status": message.status,
        "error": message.error,
        "error_kind": message.error_kind,
    }


class ChatConsumer(ClosedSocketQuiet, AsyncWebsocketConsumer):
    async def connect(self) -> None:
        if not await scope_user_approved(self.scope):
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.user = self.scope["user"]
        self.language = await scope_language(self.scope)
        self.conversation_id: int | None = None
        self.groups_joined: set[str] = set()
        await self._join(generation.user_group(self.user.id))
        self.session_group = await join_session_group(self)  # on the layer: logging out closes it
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", ()):
            await fanout.group_discard(group, self)
        if getattr(self, "session_group", None):
            await self.channel_layer.group_discard(self.session_group, self.channel_name)

    async def _join(self, group: str) -> None:
        await fanout.group_add(group, self)
        self.groups_joined.add(group)

    async def _watch(self, conversation_id: int) -> None:
        """Follow one conversation's stream frames (a page shows one conversation)."""
        if self.conversation_id == conversation_id:
            return
        if self.conversation_id is not None:
            old = generation.conversation_group(self.conversation_id)
            await fanout.group_discard(old, self)
            self.groups_joined.discard(old)
        self.conversation_id = conversation_id
        await self._join(generation.conversation_group(conversation_id))

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=fanout.encode(frame))

    async def error(self, code: str, message: str, **extra: Any) -> None:
        await self.send_frame({"type": "error", "code": code, "message": message, **extra})

    # -- from the channel layer -------------------------------------------------------------
    async def chat_frame(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])

    async def session_ended(self, event: dict[str, Any]) -> None:
        """Close the socket when its login session ends (log out, account deactivated)."""
        await self.close(code=CLOSE_UNAUTHORIZED)

    # -- from the page ----------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # The user's language for error frames, and for the generation tasks started here
        # (tasks inherit the context): reply errors and titles are saved in it.
        with translation.override(self.language):
            await self._receive(text_data, bytes_data)

    async def _receive(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if text_data is None:
            await self.error("invalid", _("Frames must be JSON text."))
            return
        if len(text_data) > settings.WS_MAX_FRAME_BYTES:
            await self.error("too_large", _("That frame is too large."))
            return
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.error("invalid", _("Frames must be JSON text."))
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.error("invalid", _("A frame needs a type."))
            return
        if json_has_lone_surrogates(text_data, frame):  # no database stores them, no socket sends them
            await self.error("invalid", _("Frames must be valid Unicode text."))
            return
        handler = self.handlers.get(frame["type"])
        if handler is None:
            await self.error("unknown_type", _("Unknown frame type."))
            return
        ref = frame.get("ref") if isinstance(frame.get("ref"), (str, int)) else None
        frame["ref"] = ref  # handlers echo it: only a plain string or number goes back
        try:
            if frame["type"] in limits.COUNTED_FRAMES:
                await _rate_check(self.user.id)
            await handler(self, frame)
        except Http404:
            await self.error("not_found", _("That conversation or message does not exist."), ref=ref)
        except services.ChatError as failure:
            await self.error(failure.code, failure.message, ref=ref)
        except Exception:
            logger.exception("chat frame %r failed", frame.get("type"))
            await self.error("internal", _("Something went wrong on the server; please try again."), ref=ref)

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.send_frame({"type": "pong"})

    async def on_subscribe(self, frame: dict[str, Any]) -> None:
        """Follow a conversation and catch up on its running replies from what the page has."""
        conversation = await services.aconversation_for_user(self.user, _id(frame, "conversation"))
        await self._watch(conversation.id)
        replies = frame.get("replies") or {}
        if not isinstance(replies, dict):
            raise services.ChatError(_("Missing or invalid %(field)s.") % {"field": "replies"})
        for reply_key, have in list(replies.items())[:20]:
            reply_id = _id({"reply": reply_key}, "reply")
            have_content, have_thinking = [*have, 0, 0][:2] if isinstance(have, list) else (0, 0)
            await self._catch_up(reply_id, _count(have_content, "replies"), _count(have_thinking, "replies"))
        await self.send_frame({"type": "subscribed", "conversation": conversation.id})

    async def _catch_up(self, reply_id: int, have_content: int, have_thinking: int) -> None:
        """Send what the page lacks of a reply: from this process, another one, or the database."""
        have = [have_content, have_thinking]
        running = generation.generation_local(reply_id)
        if running is not None and running.conversation_id == self.conversation_id:
            snapshot = running.snapshot()
            snapshot.update(generation.snapshot_trim(snapshot, have))
            await self.send_frame(snapshot)
            return
        reply = await services.areply_state(user=self.user, reply_id=reply_id)
        if reply.conversation_id != self.conversation_id:
            raise Http404
        if reply.status == Message.Status.STREAMING:
            # Generated by another worker, which answers straight to this socket's channel.
            await generation.request_remote_snapshot(reply.id, channel=self.channel_name, have=have)
            return
        snapshot = {
            "type": "snapshot",
            "reply": reply.id,
            "seq": 0,
            "state": reply.status,
            "content": reply.content,
            "thinking": reply.thinking,
            **_final_fields(reply),
        }
        snapshot.update(generation.snapshot_trim(snapshot, have))
        await self.send_frame(snapshot)

    async def _start(self, turn: services.Turn, *, kind: str, ref: Any, replaced: int | None = None) -> None:
        await self._watch(turn.conversation.id)
        frame: dict[str, Any] = {
            "type": "turn",
            "kind": kind,
            "ref": ref,
            "conversation": turn.conversation.id,
            "title": turn.conversation.title,
            "reply": message_frame(turn.reply),
        }
        if turn.user_message is not None:
            frame["user_message"] = message_frame(turn.user_message)
        if replaced is not None:
            frame["replaced"] = replaced
        if turn.created_conversation:
            frame["created"] = True
            await fanout.broadcast(
                generation.user_group(self.user.id),
                {
                    "type": "conversation",
                    "conversation": turn.conversation.id,
                    "title": turn.conversation.title,
                },
            )
        await fanout.broadcast(generation.conversation_group(turn.conversation.id), frame)
        if turn.reply.status == Message.Status.STREAMING:
            generation.generation_start(
                reply=turn.reply, user_id=self.user.id, request=turn.request, title=turn.conversation.title
            )

    async def on_send(self, frame: dict[str, Any]) -> None:
        conversation_id = _id(frame, "conversation") if frame.get("conversation") else None
        model = _text(frame, "model", required=False).replace("\x00", "")[:200]
        turn = await services.aturn_send(
            user=self.user, conversation_id=conversation_id, content=_text(frame, "content"), model=model
        )
        await self._start(turn, kind="send", ref=frame.get("ref"))

    async def on_regenerate(self, frame: dict[str, Any]) -> None:
        reply_id = _id(frame, "reply")
        turn = await services.aturn_regenerate(user=self.user, reply_id=reply_id)
        await self._start(turn, kind="regenerate", ref=frame.get("ref"), replaced=reply_id)

    async def on_edit(self, frame: dict[str, Any]) -> None:
        turn = await services.aturn_edit(
            user=self.user, message_id=_id(frame, "message"), content=_text(frame, "content")
        )
        await self._start(turn, kind="edit", ref=frame.get("ref"))

    async def on_stop(self, frame: dict[str, Any]) -> None:
        reply = await services.amessage_for_user(self.user, _id(frame, "reply"))
        if not generation.generation_stop(reply.id):
            await generation.request_remote_stop(reply.id)  # it may run in another worker

    handlers = {
        "ping": on_ping,
        "subscribe": on_subscribe,
        "send": on_send,
        "regenerate": on_regenerate,
        "retry": on_regenerate,
        "edit": on_edit,
        "stop": on_stop,
    }


def _final_fields(reply: Message) -> dict[str, Any]:
    return {
        "status": reply.status,
        "error": reply.error,
        "error_kind": reply.error_kind,
        "eval_count": reply.eval_count,
        "eval_duration": reply.eval_duration,
        "total_duration": reply.total_duration,
        "done_reason": reply.done_reason,
    }
