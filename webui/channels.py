"""Helpers shared by the websocket consumers."""

from __future__ import annotations

from asgiref.sync import async_to_sync
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
