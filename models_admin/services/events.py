"""Frames for every admin's dashboard socket, sent through the channel layer group `models`."""

from __future__ import annotations

import logging
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

GROUP = "models"


async def _group_send(message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(GROUP, message)
    except Exception:  # a broken layer must never break the work it reports on
        logger.exception("could not broadcast %s", message.get("type"))


async def broadcast_operation(snapshot: dict[str, Any]) -> None:
    """Send an operation's current snapshot to every open dashboard."""
    await _group_send({"type": "operation.update", "operation": snapshot})


async def broadcast_models_changed() -> None:
    """Tell every dashboard that the installed or loaded models changed (re-fetch the tables)."""
    await _group_send({"type": "models.changed"})


async def broadcast_activity_changed() -> None:
    """Tell every dashboard that the history or the audit log has new entries."""
    await _group_send({"type": "activity.changed"})
