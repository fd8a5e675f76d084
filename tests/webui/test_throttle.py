"""Throttling: failed log-ins per user name and per address, sign-ups per address."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from tests.conftest import PASSWORD
from tests.webui.helpers import sign_up
from webui.accounts.throttle import throttle_message
from webui.models import ThrottleEvent


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_FAILURE_WINDOW = 300
    settings.SIGNUP_LIMIT = 2
    settings.SIGNUP_WINDOW = 3600


def log_in(username: str, password: str, *, address: str = "10.0.0.1"):
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )
    return client, response


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def age_events(seconds: int) -> None:
    """Move every recorded event `seconds` into the past, as if that much time went by."""
    for event in ThrottleEvent.objects.all():
        event.created_at -= timedelta(seconds=seconds)
        event.save(update_fields=["created_at"])


def test_it_locks_a_user_name_after_too_many_failures_from_anywhere(user):
    for number in range(3):
        log_in(user.username, "wrong", address=f"10.0.1.{number}")

    client, response = log_in(user.username, PASSWORD, address="10.0.2.1")

    assert response.status_code == 429
    assert "Too many failed attempts; try again in 5 minutes." in response.content.decode()
    assert not signed_in(client)  # the right password is not even checked


def test_it_says_so_on_the_attempt_that_locks(user):
    for _ in range(2):
        _client, response = log_in(user.username, "wrong")
        assert response.status_code == 200

    _client, response = log_in(user.username, "wrong")

    assert response.status_code == 429
    assert "Too many failed attempts" in response.content.decode()


def test_it_locks_an_address_after_too_many_failures_for_any_user_name(user):
    for name in ["alice", "carol", "dave"]:
        log_in(name, "wrong", address="10.9.9.9")

    locked, locked_response = log_in(user.username, PASSWORD, address="10.9.9.9")
    elsewhere, elsewhere_response = log_in(user.username, PASSWORD, address="10.9.9.10")

    assert locked_response.status_code == 429
    assert not signed_in(locked)
    assert elsewhere_response.status_code == 302
    assert signed_in(elsewhere)


def test_it_unlocks_when_the_window_has_passed(user):
    for _ in range(3):
        log_in(user.username, "wrong")

    age_events(301)
    client, response = log_in(user.username, PASSWORD)

    assert response.status_code == 302
    assert signed_in(client)


def test_it_counts_down_the_rest_of_the_window(user):
    for _ in range(3):
        log_in(user.username, "wrong")

    age_events(200)  # 100 seconds of the window left
    _client, response = log_in(user.username, PASSWORD)

    assert "try again in 2 minutes." in response.content.decode()


def test_it_forgets_a_user_names_failures_after_a_success(user):
    for _ in range(2):
        log_in(user.username, "wrong", address="10.0.0.1")
    log_in(user.username, PASSWORD, address="10.0.0.2")
    for _ in range(2):
        log_in(user.username, "wrong", address="10.0.0.3")

    client, response = log_in(user.username, PASSWORD, address="10.0.0.4")

    assert response.status_code == 302
    assert signed_in(client)


def test_it_treats_user_names_case_insensitively(user):
    for _ in range(3):
        log_in(user.username.upper(), "wrong", address="10.0.3.1")

    _client, response = log_in(user.username, PASSWORD, address="10.0.3.2")

    assert response.status_code == 429


def test_it_words_the_wait_in_whole_minutes():
    assert throttle_message(1) == "Too many failed attempts; try again in 1 minute."
    assert throttle_message(60) == "Too many failed attempts; try again in 1 minute."
    assert throttle_message(61) == "Too many failed attempts; try again in 2 minutes."


def test_it_limits_sign_ups_per_address(admin_user):
    assert sign_up(Client(), "first", address="10.1.1.1").status_code == 302
    assert sign_up(Client(), "second", address="10.1.1.1").status_code == 302

    refused = sign_up(Client(), "third", address="10.1.1.1")
    elsewhere = sign_up(Client(), "fourth", address="10.1.1.2")

    assert refused.status_code == 429
    assert "Too many sign-ups from your address" in refused.content.decode()
    assert elsewhere.status_code == 302


def test_it_forgets_old_events(user):
    log_in(user.username, "wrong")
    age_events(301)

    log_in(user.username, "wrong")

    assert ThrottleEvent.objects.filter(scope=ThrottleEvent.Scope.LOGIN_USERNAME).count() == 1
