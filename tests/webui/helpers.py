"""Helpers shared by the webui tests."""

from __future__ import annotations

from django.test import Client

NEW_PASSWORD = "a-long-unusual-passphrase-42"


def sign_up(client: Client, username: str, *, address: str = "127.0.0.1", password: str = NEW_PASSWORD):
    """POST the sign-up form as a browser at `address` would."""
    return client.post(
        "/accounts/signup/",
        {"username": username, "password1": password, "password2": password},
        REMOTE_ADDR=address,
    )
