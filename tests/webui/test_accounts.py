"""Accounts: sign-up, the first administrator, approval gates, log in/out, password change, SSO."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from tests.conftest import PASSWORD
from tests.webui.helpers import NEW_PASSWORD, sign_up
from webui.accounts import account_setup
from webui.channels import scope_user_approved, scope_user_staff
from webui.models import FirstAdministrator, Profile

User = get_user_model()
SSO_MIDDLEWARE_AFTER = "django.contrib.auth.middleware.AuthenticationMiddleware"


def session_user(client: Client):
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


# -- sign-up -------------------------------------------------------------------------------
def test_it_makes_the_first_account_the_administrator(db):
    client = Client()

    response = sign_up(client, "root")

    assert response.status_code == 302
    assert response["Location"] == "/"
    first = User.objects.get(username="root")
    assert first.is_staff and first.is_superuser
    assert first.profile.status == Profile.Status.APPROVED
    assert FirstAdministrator.objects.get().user == first
    assert session_user(client) == first


def test_it_leaves_later_accounts_pending(admin_user):
    client = Client()

    response = sign_up(client, "newcomer")

    assert response["Location"] == "/pending/"
    newcomer = User.objects.get(username="newcomer")
    assert not newcomer.is_staff and not newcomer.is_superuser
    assert newcomer.profile.status == Profile.Status.PENDING
    assert session_user(client) == newcomer
    assert client.get("/pending/").status_code == 200


def test_it_approves_later_accounts_at_once_in_open_mode(admin_user, settings):
    settings.SIGNUP_MODE = "open"

    response = sign_up(Client(), "newcomer")

    assert response["Location"] == "/"
    newcomer = User.objects.get(username="newcomer")
    assert newcomer.profile.status == Profile.Status.APPROVED
    assert not newcomer.is_staff


def test_it_refuses_sign_ups_in_closed_mode(admin_user, settings):
    settings.SIGNUP_MODE = "closed"
    client = Client()

    page = client.get("/accounts/signup/")
    response = sign_up(client, "newcomer")

    assert page.status_code == 200
    assert "Sign-up is closed" in page.content.decode()
    assert 'name="password1"' not in page.content.decode()
    assert response.status_code == 403
    assert not User.objects.filter(username="newcomer").exists()
    assert "Sign up" not in client.get("/accounts/login/").content.decode()


def test_it_lets_the_very_first_account_sign_up_in_closed_mode(db, settings):
    settings.SIGNUP_MODE = "closed"

    response = sign_up(Client(), "root")

    assert response["Location"] == "/"
    assert User.objects.get(username="root").is_superuser


def test_it_shows_form_errors_next_to_the_fields(admin_user):
    response = Client().post(
        "/accounts/signup/",
        {"username": "newcomer", "password1": NEW_PASSWORD, "password2": "something-else"},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_password2_error"' in html
    assert 'aria-invalid="true"' in html
    assert not User.objects.filter(username="newcomer").exists()


def test_it_refuses_a_user_name_that_differs_only_in_case(user):
    response = sign_up(Client(), user.username.upper())

    assert response.status_code == 200
    assert 'id="id_username_error"' in response.content.decode()
    assert User.objects.filter(username__iexact=user.username).count() == 1


def test_it_links_log_in_and_sign_up_pages(db):
    client = Client()
    assert 'href="/accounts/signup/"' in client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/login/"' in client.get("/accounts/signup/").content.decode()


def test_it_sends_signed_in_visitors_of_the_sign_up_page_to_chat(user_client):
    assert user_client.get("/accounts/signup/")["Location"] == "/"


# -- the first administrator ---------------------------------------------------------------
def test_it_gives_the_first_administrator_slot_to_one_account_only(db):
    first = User.objects.create_user(username="first", password=PASSWORD)
    second = User.objects.create_user(username="second", password=PASSWORD)
    # As if `first` won a concurrent race and has not committed its profile yet.
    FirstAdministrator.objects.create(user=first)

    profile = account_setup(user=second)

    second.refresh_from_db()
    assert profile.status == Profile.Status.PENDING
    assert not second.is_superuser


def test_it_does_not_promote_anybody_when_a_superuser_already_exists(db):
    User.objects.create_superuser(username="root", password=PASSWORD)  # createsuperuser: no profile
    newcomer = User.objects.create_user(username="newcomer", password=PASSWORD)

    assert account_setup(user=newcomer).status == Profile.Status.PENDING
    assert not FirstAdministrator.objects.exists()


def test_it_sets_an_account_up_only_once(admin_user):
    assert account_setup(user=admin_user) == admin_user.profile
    assert Profile.objects.filter(user=admin_user).count() == 1


# -- the approval gate ---------------------------------------------------------------------
@pytest.fixture
def pending_client(pending_user) -> Client:
    client = Client()
    client.force_login(pending_user)
    return client


@pytest.mark.parametrize("path", ["/", "/users/", "/models/", "/no-such-page/"])
def test_it_sends_pending_users_to_the_waiting_page(pending_client, path):
    response = pending_client.get(path)

    assert response.status_code == 302
    assert response["Location"] == "/pending/"


def test_it_redirects_htmx_requests_of_pending_users_with_hx_redirect(pending_client):
    response = pending_client.get("/", headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/pending/"


@pytest.mark.parametrize("path", ["/pending/", "/accounts/password/", "/healthz", "/accounts/login/"])
def test_it_lets_pending_users_reach_the_open_pages(pending_client, ollama, path):
    assert pending_client.get(path).status_code in {200, 302}
    assert pending_client.get(path).get("Location") != "/pending/"


def test_it_shows_pending_users_where_they_stand(pending_client):
    html = pending_client.get("/pending/").content.decode()

    assert "Waiting for approval" in html
    assert 'action="/accounts/logout/"' in html


def test_it_tells_rejected_users_they_were_not_approved(pending_user, pending_client):
    Profile.objects.filter(user=pending_user).update(status=Profile.Status.REJECTED)

    html = pending_client.get("/pending/").content.decode()

    assert "did not approve" in html
    assert "Waiting for approval" not in html
    assert pending_client.get("/")["Location"] == "/pending/"


def test_it_sends_approved_users_from_the_waiting_page_to_chat(user_client):
    assert user_client.get("/pending/")["Location"] == "/"


def test_it_asks_anonymous_visitors_to_log_in(db):
    assert Client().get("/")["Location"] == "/accounts/login/?next=/"
    assert Client().get("/pending/")["Location"] == "/accounts/login/?next=/pending/"


def test_it_signs_deactivated_users_out(user, user_client):
    user.is_active = False
    user.save()

    assert user_client.get("/")["Location"] == "/accounts/login/?next=/"


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_websockets_of_users_who_are_not_approved(admin_user, user, pending_user):
    inactive = await User.objects.acreate(username="gone", is_active=False)
    await Profile.objects.acreate(user=inactive, status=Profile.Status.APPROVED)

    assert await scope_user_approved({"user": user}) is True
    assert await scope_user_approved({"user": admin_user}) is True
    assert await scope_user_approved({"user": pending_user}) is False
    assert await scope_user_approved({"user": inactive}) is False
    assert await scope_user_approved({"user": AnonymousUser()}) is False
    assert await scope_user_approved({}) is False
    assert await scope_user_staff({"user": admin_user}) is True
    assert await scope_user_staff({"user": user}) is False


# -- log in, log out, password -------------------------------------------------------------
def test_it_logs_in_and_lands_on_chat(user):
    client = Client()

    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})

    assert response["Location"] == "/"
    assert session_user(client) == user


def test_it_logs_in_to_the_page_asked_for(admin_user):
    response = Client().post(
        "/accounts/login/?next=/users/",
        {"username": admin_user.username, "password": PASSWORD, "next": "/users/"},
    )

    assert response["Location"] == "/users/"


def test_it_refuses_a_wrong_password(user):
    client = Client()

    response = client.post("/accounts/login/", {"username": user.username, "password": "wrong"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert session_user(client) is None


def test_it_logs_out_by_post_only(user_client):
    assert user_client.get("/accounts/logout/").status_code == 405

    response = user_client.post("/accounts/logout/")

    assert response["Location"] == "/accounts/login/"
    assert session_user(user_client) is None


def test_it_changes_the_password_and_keeps_the_session(user, user_client):
    page = user_client.get("/accounts/password/")
    response = user_client.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert page.status_code == 200
    assert response["Location"] == "/accounts/password/done/"
    assert user_client.get("/accounts/password/done/").status_code == 200
    assert session_user(user_client) == user
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_it_refuses_a_password_change_without_the_old_password(user, user_client):
    response = user_client.post(
        "/accounts/password/",
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 200
    assert 'id="id_old_password_error"' in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


# -- trusted-header single sign-on ---------------------------------------------------------
@pytest.fixture
def sso(settings):
    """Turn trusted-header sign-on on, as REMOTE_USER_HEADER=HTTP_X_REMOTE_USER would."""
    settings.REMOTE_USER_HEADER = "HTTP_X_REMOTE_USER"
    middleware = list(settings.MIDDLEWARE)
    if "webui.middleware.TrustedHeaderMiddleware" not in middleware:
        middleware.insert(
            middleware.index(SSO_MIDDLEWARE_AFTER) + 1, "webui.middleware.TrustedHeaderMiddleware"
        )
    settings.MIDDLEWARE = middleware
    settings.AUTHENTICATION_BACKENDS = [
        "webui.middleware.TrustedHeaderBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    return settings


def test_it_signs_in_a_new_sso_user_as_pending(sso, admin_user):
    client = Client()

    response = client.get("/", headers={"X-Remote-User": "sam"})

    sam = User.objects.get(username="sam")
    assert response["Location"] == "/pending/"
    assert sam.profile.status == Profile.Status.PENDING
    assert session_user(client) == sam
    assert client.get("/pending/", headers={"X-Remote-User": "sam"}).status_code == 200


def test_it_makes_the_first_sso_user_the_administrator(sso, db):
    client = Client()

    response = client.get("/users/", headers={"X-Remote-User": "root"})

    assert response.status_code == 200
    assert User.objects.get(username="root").is_superuser


def test_it_signs_in_a_known_sso_user(sso, admin_user):
    client = Client()

    response = client.get("/users/", headers={"X-Remote-User": admin_user.username})

    assert response.status_code == 200
    assert session_user(client) == admin_user
    assert User.objects.count() == 1


def test_it_ignores_the_header_when_sso_is_off(admin_user):
    client = Client()

    response = client.get("/users/", headers={"X-Remote-User": admin_user.username})

    assert response["Location"] == "/accounts/login/?next=/users/"
    assert session_user(client) is None


def test_it_refuses_deactivated_sso_users(sso, user):
    user.is_active = False
    user.save()
    client = Client()

    response = client.get("/", headers={"X-Remote-User": user.username})

    assert response["Location"] == "/accounts/login/?next=/"
