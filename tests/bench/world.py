"""The benchmark's people: users and their sessions, made through Django in this process.

`setup_django` points this process at the same database file daphne serves (after `migrate` ran
in a subprocess), as tests/conftest.py does for the end-to-end tests.
"""

from __future__ import annotations

import os

from tests.bench.harness import Environment


def setup_django(environment: Environment, *, ollama_url: str = "") -> None:
    """Configure Django in this process for `environment` (once: settings are read once)."""
    os.environ.update(environment.variables())
    if ollama_url:
        os.environ["OLLAMA_HOST"] = ollama_url
    import django

    django.setup()


def users_create(count: int, *, prefix: str = "bench", staff: bool = False) -> list:
    """Create `count` approved users (no usable password: they get sessions directly)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from webui.models import Profile

    user_model = get_user_model()
    unusable = make_password(None)
    users = user_model.objects.bulk_create(
        [
            user_model(username=f"{prefix}{index}", password=unusable, is_staff=staff, is_superuser=staff)
            for index in range(count)
        ]
    )
    users = list(user_model.objects.filter(username__startswith=prefix).order_by("id"))
    Profile.objects.bulk_create([Profile(user=user, status=Profile.Status.APPROVED) for user in users])
    return users


def cookies_for(users: list) -> list[str]:
    """Return one signed-in session id per user (Django's own login, as the tests do)."""
    from tests.conftest import session_cookie

    return [session_cookie(user) for user in users]
