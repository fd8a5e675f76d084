"""Helpers shared by the websocket consumers."""

from __future__ import annotations

from channels.db import database_sync_to_async

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
