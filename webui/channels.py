"""Helpers shared by the websocket consumers."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import async_to_sync
from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from webui.models import user_is_approved


@database_sync_to_async
def _approved(user) -> bool:
    return user_is_approved(user)


async def scope_user_approved(scope: dict) -> bool:
    """Return True when the socket's user is signed in, active and approved."""
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return False
    return await _approved(user)


async def scope_user_staff(scope: dict) -> bool:
    """Return True when the socket's user is an approved staff member."""
    user = scope.get("user")
    return bool(user is not None and user.is_authenticated and user.is_staff) and await _approved(user)


def session_group(session_key: str) -> str:
    return f"session.{session_key}"


async def join_session_group(consumer) -> str | None:
    """Put a socket in its login session's group, so logging out closes it; return the group.

    The consumer must answer `session.ended` frames by closing (see ChatConsumer).
    """
    session = consumer.scope.get("session")
    key = getattr(session, "session_key", None)
    if not key:
        return None
    await consumer.channel_layer.group_add(session_group(key), consumer.channel_name)
    return session_group(key)


def end_session_sockets(session_key: str | None) -> None:
    """Close every socket opened with this login session (called on log out)."""
    if session_key:
        async_to_sync(get_channel_layer().group_send)(session_group(session_key), {"type": "session.ended"})


def end_user_sessions(user_id: int, *, keep: str | None = None) -> int:
    """Sign a user out everywhere: delete their sessions and close those sessions' sockets.

    Called when an account is deactivated or rejected (its open sockets would otherwise keep
    working) and after a password change (`keep` = the session that changed it). Walks the
    unexpired sessions of the database backend; returns how many it ended.
    """
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    ended = []
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.session_key != keep and session.get_decoded().get("_auth_user_id") == str(user_id):
            ended.append(session.session_key)
    Session.objects.filter(session_key__in=ended).delete()
    for key in ended:
        end_session_sockets(key)
    return len(ended)


def _language_from_headers(scope: dict) -> str:
    from django.conf import settings
    from django.utils.translation import get_supported_language_variant
    from django.utils.translation.trans_real import parse_accept_lang_header

    cookie = scope.get("cookies", {}).get(settings.LANGUAGE_COOKIE_NAME)
    candidates = [cookie] if cookie else []
    headers = dict(scope.get("headers") or [])
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    candidates += [code for code, _quality in parse_accept_lang_header(accept) if code != "*"]
    for code in candidates:
        try:
            return get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


@database_sync_to_async
def _profile_language(user) -> str:
    from webui.models import Profile

    return Profile.objects.filter(user=user).values_list("language", flat=True).first() or ""


async def scope_language(scope: dict) -> str:
    """Return the language for a socket: the user's choice, else the cookie or the browser's."""
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        chosen = await _profile_language(user)
        if chosen:
            return chosen
    return _language_from_headers(scope)


class ClosedSocketQuiet:
    """Mixin for websocket consumers: a frame sent as the client goes away is dropped quietly.

    daphne (autobahn) raises `Disconnected` when the application sends on a connection that
    has just closed (a client leaving, or a frame daphne refused and failed the connection
    for); there is nobody left to tell, so it is not an error of the application.
    """

    async def send(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().send(*args, **kwargs)
        except Disconnected:
            pass


async def listener_stop(listener: asyncio.Task | None, channel: str | None) -> None:
    """End a per-process channel-layer listener: asked by a `worker.exit` message, then cancelled.

    Not by cancellation alone: channels-redis retries a blocking read whose cancellation
    redis-py (Python 3.11) turned into a timeout, and a cancelled listener could read on for
    ever. The listener must break out of its loop on `worker.exit`. Every wait is bounded.
    """
    if listener is None or listener.done():
        return
    if channel is not None:
        await get_channel_layer().send(channel, {"type": "worker.exit"})
        await asyncio.wait([listener], timeout=2.0)
    if not listener.done():
        listener.cancel()
        await asyncio.wait([listener], timeout=2.0)
