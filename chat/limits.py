"""Per-user rate limit on chat messages (sends, edits, regenerations), shared by every worker.

Counts live in Django's cache, which is Redis when REDIS_URL is set (so every worker process
counts the same messages) and process memory otherwise (one process then serves everyone).
The window slides: the previous minute's count weighs in proportion to how much of it is
still within the last 60 seconds, so a burst at a minute's boundary cannot double the limit.
"""

from __future__ import annotations

import math
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.utils.translation import ngettext

from chat.services import ChatError

WINDOW = 60  # seconds
# The frame types that cost a generation, hence count as a message.
COUNTED_FRAMES = frozenset({"send", "edit", "regenerate", "retry"})


def _key(user_id: int, bucket: int) -> str:
    return f"chat-rate:{user_id}:{bucket}"


def _estimate(previous: int, current: int, elapsed: float) -> float:
    # Rounded, so that float noise never refuses a message at the very second it was promised.
    return round(previous * (1 - elapsed / WINDOW) + current, 6)


def message_rate_wait(*, user_id: int, now: float | None = None) -> int:
    """Count one message for the user; return 0, or the seconds to wait when over the limit.

    A refused message is not counted, so retrying while limited does not extend the wait.
    """
    limit = settings.MAX_MESSAGES_PER_MINUTE
    if limit <= 0:
        return 0
    now = time.time() if now is None else now
    bucket, elapsed = divmod(now, WINDOW)
    bucket = int(bucket)
    current_key = _key(user_id, bucket)
    previous = cache.get(_key(user_id, bucket - 1), 0)
    current = _count_one(current_key)
    if _estimate(previous, current, elapsed) <= limit:
        return 0
    cache.decr(current_key)
    return _wait(previous=previous, current=current - 1, elapsed=elapsed, limit=limit)


def _count_one(key: str) -> int:
    """Add one to the counter at `key` (created at zero), atomically; return the new count."""
    for _attempt in range(3):
        cache.add(key, 0, timeout=2 * WINDOW + 5)
        try:
            return cache.incr(key)  # atomic, in Redis as in memory
        except ValueError:  # expired or evicted between add and incr: start it again
            continue
    return 1


def _wait(*, previous: int, current: int, elapsed: float, limit: int) -> int:
    """Return the whole seconds until one more message fits, if nobody sends meanwhile."""
    for seconds in range(1, 2 * WINDOW + 1):
        later = elapsed + seconds
        if later < WINDOW:
            estimate = _estimate(previous, current + 1, later)
        else:  # the current minute has become the previous one
            estimate = _estimate(current, 1, later - WINDOW)
        if estimate <= limit:
            return seconds
    return 2 * WINDOW


def message_rate_check(*, user_id: int) -> None:
    """Count one message, or raise ChatError(code="rate_limited") saying how long to wait."""
    wait = message_rate_wait(user_id=user_id)
    if wait:
        seconds = max(1, math.ceil(wait))
        raise ChatError(
            ngettext(
                "You are sending messages too fast (the limit is %(limit)s a minute); "
                "try again in %(seconds)s second.",
                "You are sending messages too fast (the limit is %(limit)s a minute); "
                "try again in %(seconds)s seconds.",
                seconds,
            )
            % {"limit": settings.MAX_MESSAGES_PER_MINUTE, "seconds": seconds},
            code="rate_limited",
        )


# Off the event loop: with Redis every cache call is a network round trip.
amessage_rate_check = sync_to_async(message_rate_check, thread_sensitive=False)
