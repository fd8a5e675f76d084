"""The users page: who may see it, the actions, htmx row swaps, and the last-admin rules."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import make_user
from webui.models import Profile

User = get_user_model()
HTMX = {"HX-Request": "true"}


def act(client: Client, user, action: str, *, htmx: bool = False):
    return client.post(f"/users/{user.pk}/{action}/", headers=HTMX if htmx else {})


def status_of(user) -> str:
    return Profile.objects.get(user=user).status


# -- who may see it ------------------------------------------------------------------------
def test_it_sends_anonymous_visitors_to_log_in(db):
    assert Client().get("/users/")["Location"] == "/accounts/login/?next=/users/"


def test_it_refuses_users_who_are_not_staff(user_client, pending_user):
    assert user_client.get("/users/").status_code == 403
    assert act(user_client, pending_user, "approve").status_code == 403
    assert status_of(pending_user) == Profile.Status.PENDING


def test_it_lists_every_account_with_pending_ones_first(admin_client, admin_user, user, pending_user):
    response = admin_client.get("/users/")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.index(f'id="user-{pending_user.pk}"') < html.index(f'id="user-{admin_user.pk}"')
    assert html.index(f'id="user-{pending_user.pk}"') < html.index(f'id="user-{user.pk}"')
    assert "1 pending" in html
    assert "Pending approval" in html


def test_it_asks_before_deactivating_or_rejecting(admin_client, pending_user):
    html = admin_client.get("/users/").content.decode()

    assert f'hx-confirm="Reject {pending_user.username}?' in html
    assert f'data-confirm="Deactivate {pending_user.username}?' in html


def test_it_refuses_actions_by_get(admin_client, pending_user):
    assert admin_client.get(f"/users/{pending_user.pk}/approve/").status_code == 405


def test_it_refuses_actions_without_the_csrf_token(admin_user, pending_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    assert act(client, pending_user, "approve").status_code == 403
    assert status_of(pending_user) == Profile.Status.PENDING


def test_it_answers_404_for_unknown_actions_and_accounts(admin_client, pending_user):
    assert act(admin_client, pending_user, "explode").status_code == 404
    assert admin_client.post("/users/999999/approve/").status_code == 404


# -- the actions ---------------------------------------------------------------------------
def test_it_approves_without_javascript(admin_client, pending_user):
    response = act(admin_client, pending_user, "approve")

    assert response.status_code == 302
    assert response["Location"] == "/users/"
    assert status_of(pending_user) == Profile.Status.APPROVED
    assert f"Approved {pending_user.username}." in admin_client.get("/users/").content.decode()


def test_it_swaps_just_the_row_for_htmx(admin_client, pending_user):
    response = act(admin_client, pending_user, "approve", htmx=True)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.strip().startswith(f'<tr id="user-{pending_user.pk}"')
    assert "<html" not in html
    assert "Approved" in html
    assert response["HX-Trigger"] == '{"users-changed": {}}'
    assert status_of(pending_user) == Profile.Status.APPROVED


def test_it_refreshes_the_pending_count_for_htmx(admin_client, pending_user):
    response = admin_client.get("/users/", headers={**HTMX, "HX-Target": "pending-count"})

    html = response.content.decode()
    assert html.strip().startswith('<span id="pending-count"')
    assert "1 pending" in html
    assert "<table" not in html


def test_it_rejects_and_the_user_learns_it(admin_client, pending_user):
    act(admin_client, pending_user, "reject")

    assert status_of(pending_user) == Profile.Status.REJECTED
    client = Client()
    client.force_login(pending_user)
    assert "did not approve" in client.get("/pending/").content.decode()


def test_it_refuses_to_reject_an_administrator(admin_client, admin_user):
    other_admin = make_user("grace", staff=True)

    response = act(admin_client, other_admin, "reject", htmx=True)

    assert "Administrators cannot be rejected" in response.content.decode()
    assert status_of(other_admin) == Profile.Status.APPROVED


def test_it_makes_and_unmakes_administrators(admin_client, user):
    act(admin_client, user, "promote")
    user.refresh_from_db()
    assert user.is_staff and user.is_superuser

    act(admin_client, user, "demote")
    user.refresh_from_db()
    assert not user.is_staff and not user.is_superuser
    assert status_of(user) == Profile.Status.APPROVED


def test_it_approves_a_pending_user_made_administrator(admin_client, pending_user):
    act(admin_client, pending_user, "promote")

    assert status_of(pending_user) == Profile.Status.APPROVED


def test_it_deactivates_and_reactivates(admin_client, user, user_client):
    act(admin_client, user, "deactivate")
    user.refresh_from_db()
    assert not user.is_active
    assert user_client.get("/")["Location"] == "/accounts/login/?next=/"

    act(admin_client, user, "reactivate")
    user.refresh_from_db()
    assert user.is_active


# -- the last active administrator ---------------------------------------------------------
@pytest.mark.parametrize("action", ["demote", "deactivate"])
def test_it_keeps_the_last_active_administrator(admin_client, admin_user, action):
    response = act(admin_client, admin_user, action, htmx=True)

    admin_user.refresh_from_db()
    assert admin_user.is_active and admin_user.is_staff
    assert "You are the last active administrator" in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert "HX-Trigger" not in response


def test_it_explains_the_refusal_without_javascript(admin_client, admin_user):
    response = act(admin_client, admin_user, "demote")

    assert response["Location"] == "/users/"
    assert "You are the last active administrator" in admin_client.get("/users/").content.decode()


def test_it_does_not_count_deactivated_administrators(admin_client, admin_user):
    dormant = make_user("grace", staff=True)
    dormant.is_active = False
    dormant.save()

    act(admin_client, admin_user, "deactivate")

    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_it_lets_an_administrator_step_down_when_another_remains(admin_client, admin_user):
    make_user("grace", staff=True)

    response = act(admin_client, admin_user, "demote", htmx=True)

    admin_user.refresh_from_db()
    assert not admin_user.is_staff
    assert response["HX-Redirect"] == "/"


def test_it_lets_an_administrator_demote_another_but_never_the_last(admin_client, admin_user):
    grace = make_user("grace", staff=True)
    grace_client = Client()
    grace_client.force_login(grace)

    act(admin_client, grace, "demote")
    grace.refresh_from_db()
    assert not grace.is_staff

    act(admin_client, grace, "promote")
    act(grace_client, admin_user, "deactivate")
    response = act(grace_client, grace, "deactivate", htmx=True)

    grace.refresh_from_db()
    assert grace.is_active
    assert "You are the last active administrator" in response.content.decode()
