"""Rate limits kept in the database, so every worker process counts the same events."""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import ngettext

from webui.models import ThrottleEvent

Scope = ThrottleEvent.Scope
KEY_LENGTH = 255


def client_address(request: HttpRequest) -> str:
    """Return the client's address as the server saw it.

    Behind a reverse proxy run daphne with `--proxy-headers`, so that this is the real
    client and not the proxy.
    """
    return request.META.get("REMOTE_ADDR") or "unknown"


def _key(value: str) -> str:
    return value.strip().casefold()[:KEY_LENGTH]


def throttle_wait(*, scope: str, key: str, limit: int, window: int) -> int:
    """Return the seconds until `key` may act again in `scope`; 0 when it may act now.

    `limit` events within `window` seconds lock `key` until the oldest of them leaves
    the window.
    """
    if limit <= 0:
        return 0
    now = timezone.now()
    recent = list(
        ThrottleEvent.objects.filter(
            scope=scope, key=_key(key), created_at__gt=now - timedelta(seconds=window)
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(recent) < limit:
        return 0
    unlock_at = recent[-1] + timedelta(seconds=window)
    return max(1, math.ceil((unlock_at - now).total_seconds()))


def throttle_record(*, scope: str, key: str, window: int) -> None:
    """Count one event for `key` in `scope`, and forget events that left the window."""
    now = timezone.now()
    ThrottleEvent.objects.create(scope=scope, key=_key(key), created_at=now)
    ThrottleEvent.objects.filter(scope=scope, created_at__lte=now - timedelta(seconds=window)).delete()


def throttle_clear(*, scope: str, key: str) -> None:
    ThrottleEvent.objects.filter(scope=scope, key=_key(key)).delete()


def throttle_message(seconds: int) -> str:
    """Return the sentence telling someone how long they are locked out."""
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext(
        "Too many failed attempts; try again in %(minutes)d minute.",
        "Too many failed attempts; try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}


def login_wait(*, username: str, address: str) -> int:
    """Return the seconds until this user name and address may try a password again."""
    limit, window = settings.LOGIN_FAILURE_LIMIT, settings.LOGIN_FAILURE_WINDOW
    return max(
        throttle_wait(scope=Scope.LOGIN_USERNAME, key=username, limit=limit, window=window),
        throttle_wait(scope=Scope.LOGIN_ADDRESS, key=address, limit=limit, window=window),
    )


def login_failure_record(*, username: str, address: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW
    throttle_record(scope=Scope.LOGIN_USERNAME, key=username, window=window)
    throttle_record(scope=Scope.LOGIN_ADDRESS, key=address, window=window)


def login_success_record(*, username: str) -> None:
    """Forget the user name's failures (not the address's: one's own account must not reset them)."""
    throttle_clear(scope=Scope.LOGIN_USERNAME, key=username)


def signup_limits() -> tuple[int, int]:
    return getattr(settings, "SIGNUP_LIMIT", 5), getattr(settings, "SIGNUP_WINDOW", 3600)


def signup_wait(*, address: str) -> int:
    limit, window = signup_limits()
    return throttle_wait(scope=Scope.SIGNUP_ADDRESS, key=address, limit=limit, window=window)


def signup_record(*, address: str) -> None:
    throttle_record(scope=Scope.SIGNUP_ADDRESS, key=address, window=signup_limits()[1])


def signup_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext(
        "Too many sign-ups from your address; try again in %(minutes)d minute.",
        "Too many sign-ups from your address; try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}
