"""Work done once when a server process starts."""

from __future__ import annotations

import logging

from django.db import DatabaseError

logger = logging.getLogger(__name__)


def recover_after_restart() -> None:
    """Mark work left running by a dead process: replies become interrupted, pulls failed.

    Only work whose heartbeat is older than STREAM_STALE_AFTER is touched, so starting a
    second worker never breaks the streams of a live one.
    """
    from chat.services import replies_mark_interrupted
    from models_admin.services import operations_mark_failed

    try:
        replies = replies_mark_interrupted()
        operations = operations_mark_failed()
    except (DatabaseError, RuntimeError) as error:  # not migrated yet, or DB access not allowed
        logger.warning("startup recovery skipped: %s", error)
        return
    if replies or operations:
        logger.info("startup recovery: %s replies interrupted, %s operations failed", replies, operations)
