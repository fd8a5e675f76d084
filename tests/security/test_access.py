"""The access matrix: every URL pattern and websocket route, for every kind of visitor.

Routes come from the resolvers and from the ASGI application, so a new page or socket fails
`test_it_classifies_every_route` until it is given an access rule here, and is then checked
for anonymous visitors, pending users, normal users, another user's objects and staff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient, Client

from chat.models import Conversation, Message
from models_admin.models import OllamaServer, Operation
from tests.conftest import PASSWORD, make_user, session_cookie
from tests.security.routes import (
    ACCESS,
    APPROVED,
    CHAT,
    MODELS,
    OWNED,
    PUBLIC,
    ROUTES,
    SIGNED_IN,
    SOCKETS,
    STAFF,
    Route,
    sample_url,
    socket_routes,
)

SECRET = "plutonium-4711"


def test_it_classifies_every_route():
    names = [route.name for route in ROUTES]
    assert len(names) == len(set(names)), "two routes share a name"
    unclassified = sorted(set(names) - set(ACCESS))
    assert not unclassified, f"new routes need an access rule in {__file__}: {unclassified}"
    assert not sorted(set(ACCESS) - set(names)), "ACCESS lists routes that no longer exist"
    assert sorted(socket_routes()) == sorted(SOCKETS), "a websocket route needs an access rule"


def test_it_exempts_no_view_from_csrf():
    exempt = [route.name for route in ROUTES if getattr(route.callback, "csrf_exempt", False)]
    assert exempt == []


# -- the small world ------------------------------------------------------------------------
@dataclass
class World:
    owner: Any
    other: Any
    admin: Any
    pending: Any
    conversation: Conversation
    operation: Operation
    double: Any
    server: OllamaServer


@pytest.fixture
def world(db, ollama) -> World:
    admin = make_user("ada", staff=True)
    owner = make_user("bob")
    other = make_user("eve")
    pending = make_user("pat", status="pending")
    operation = Operation.objects.create(kind="pull", model="llama3.2", user=admin, status="succeeded")
    server = OllamaServer.objects.create(name="spare", base_url=ollama.url, enabled=False)
    return World(owner, other, admin, pending, _conversation(owner), operation, ollama, server)


def _conversation(owner) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=f"Title {SECRET}", model="llama3.2:latest")
    Message.objects.create(conversation=conversation, role="user", content=f"The code is {SECRET}")
    Message.objects.create(conversation=conversation, role="assistant", content=f"Noted: {SECRET}")
    return conversation


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def url_of(route: Route, world: World, *, conversation: Conversation | None = None) -> str:
    """Return a URL of `route` with sample arguments from the world."""
    conversation = conversation or world.conversation
    return sample_url(
        route,
        conversation=conversation.pk,
        before=conversation.messages.order_by("-id").first().pk,
        account=world.pending.pk,
        operation=world.operation.pk,
        server=world.server.pk,
    )


# Harmless POST bodies: enough to pass the access check, nothing irreversible.
POST_DATA = {
    "chat:rename": {"title": "Renamed"},
    "chat:configure": {"system_prompt": "", "temperature": "0.5"},
    "chat:set-model": {"model": "llama3.2:latest"},
    "chat:default-model": {"model": "llama3.2:latest"},
    "login": {"username": "nobody", "password": "wrong"},
    "set_language": {"language": "en", "next": "/"},
    "user-action": {},
    "models_admin:server-test": {"server": "spare"},
    "theme-set": {"theme": "dark"},
}


def request(client: Client, method: str, url: str, name: str):
    if method == "GET":
        return client.get(url)
    return client.post(url, POST_DATA.get(name, {}))


def redirects_to(response, path: str) -> bool:
    return response.status_code == 302 and urlsplit(response["Location"]).path == path


def routes_for(*kinds: str) -> list[Route]:
    return [route for route in ROUTES if ACCESS.get(route.name, ("?",))[0] in kinds]


def each_method(routes: list[Route]) -> list[tuple[Route, str]]:
    return [(route, method) for route in routes for method in ACCESS[route.name][1]]


# -- HTTP -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("route", "method"), each_method(routes_for(SIGNED_IN, APPROVED, OWNED, STAFF)), ids=str
)
def test_it_sends_anonymous_visitors_to_log_in(world, route, method):
    response = request(client_for(None), method, url_of(route, world), route.name)
    assert redirects_to(response, "/accounts/login/"), (response.status_code, response.get("Location"))


@pytest.mark.parametrize(("route", "method"), each_method(routes_for(PUBLIC)), ids=str)
def test_it_serves_public_routes_to_anonymous_visitors(world, route, method):
    response = request(client_for(None), method, url_of(route, world), route.name)
    assert response.status_code in (200, 204, 302, 400) and not redirects_to(response, "/accounts/login/")


@pytest.mark.parametrize(("route", "method"), each_method(routes_for(APPROVED, OWNED, STAFF)), ids=str)
def test_it_keeps_pending_users_on_the_waiting_page(world, route, method):
    url = url_of(route, world, conversation=_conversation(world.pending))
    response = request(client_for(world.pending), method, url, route.name)
    assert redirects_to(response, "/pending/"), (response.status_code, response.get("Location"))


@pytest.mark.parametrize(("route", "method"), each_method(routes_for(SIGNED_IN)), ids=str)
def test_it_lets_pending_users_reach_their_account_pages(world, route, method):
    response = request(client_for(world.pending), method, url_of(route, world), route.name)
    assert response.status_code in (200, 302) and not redirects_to(response, "/pending/")
    assert redirects_to(response, "/accounts/login/") == (route.name == "logout")


@pytest.mark.parametrize(("route", "method"), each_method(routes_for(STAFF)), ids=str)
def test_it_refuses_admin_pages_and_actions_to_normal_users(world, route, method):
    response = request(client_for(world.owner), method, url_of(route, world), route.name)
    assert response.status_code == 403
    world.pending.profile.refresh_from_db()
    assert world.pending.profile.status == "pending"  # the approve action did not run


@pytest.mark.parametrize(("route", "method"), each_method(routes_for(OWNED)), ids=str)
@pytest.mark.parametrize("who", ["other", "admin"])
def test_it_answers_404_for_another_users_conversation(world, route, method, who):
    response = request(client_for(getattr(world, who)), method, url_of(route, world), route.name)
    assert response.status_code == 404
    assert SECRET not in response.content.decode()
    world.conversation.refresh_from_db()  # still there, unchanged
    assert world.conversation.title == f"Title {SECRET}" and not world.conversation.pinned


@pytest.mark.parametrize(("route", "method"), each_method(routes_for(OWNED, APPROVED)), ids=str)
def test_it_lets_the_owner_use_their_own_conversation(world, route, method):
    url = url_of(route, world, conversation=_conversation(world.owner))
    response = request(client_for(world.owner), method, url, route.name)
    assert response.status_code in (200, 204, 302)
    assert not redirects_to(response, "/accounts/login/") and not redirects_to(response, "/pending/")


@pytest.mark.parametrize(("route", "method"), each_method(routes_for(STAFF)), ids=str)
def test_it_lets_staff_in(world, route, method):
    response = request(client_for(world.admin), method, url_of(route, world), route.name)
    assert response.status_code not in (401, 403, 404, 405, 500), response.status_code
    assert not redirects_to(response, "/accounts/login/") and not redirects_to(response, "/pending/")


def test_it_keeps_other_users_conversations_out_of_search_and_the_sidebar(world):
    client = client_for(world.other)
    link = f"/c/{world.conversation.pk}/"
    for url in (
        "/sidebar/?q=4711",  # in the title and the messages
        "/sidebar/?q=4711&archived=1",
        "/sidebar/?q=Noted",  # in the reply only
        f"/sidebar/?current={world.conversation.pk}",
        "/?q=4711",
        "/",
    ):
        response = client.get(url)
        html = response.content.decode()
        assert response.status_code == 200
        assert f"Title {SECRET}" not in html and link not in html, url
    own = client_for(world.owner).get("/sidebar/?q=Noted").content.decode()
    assert f"Title {SECRET}" in own and link in own  # the search itself works


def test_it_changes_nothing_on_get(world):
    """Every state change is a POST: GETting every route as staff writes nothing anywhere."""

    def state():
        return (
            list(Conversation.objects.values_list("id", "title", "pinned", "archived", "model")),
            list(Message.objects.values_list("id", "content", "status")),
            list(Operation.objects.values_list("id", "status")),
            list(get_user_model().objects.values_list("id", "is_active", "is_staff", "profile__status")),
        )

    before = state()
    for route in ROUTES:
        if "GET" in ACCESS.get(route.name, ("", ()))[1]:
            assert client_for(world.admin).get(url_of(route, world)).status_code < 500, route
    assert state() == before
    mutating = {"/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete"}
    assert not [entry["path"] for entry in world.double.requests if entry["path"] in mutating]


# -- CSRF -----------------------------------------------------------------------------------
POSTS = [(route, "POST") for route in ROUTES if "POST" in ACCESS.get(route.name, (None, ()))[1]]


@pytest.mark.parametrize(("route", "method"), POSTS, ids=str)
def test_it_refuses_every_post_without_the_csrf_token(world, route, method):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.admin)
    response = client.post(url_of(route, world), POST_DATA.get(route.name, {}))
    assert response.status_code == 403 and b"CSRF" in response.content
    anonymous = Client(enforce_csrf_checks=True).post(url_of(route, world), POST_DATA.get(route.name, {}))
    assert anonymous.status_code in (302, 403)
    assert anonymous.status_code == 403 or redirects_to(anonymous, "/accounts/login/")


def test_it_accepts_a_post_with_the_token_from_the_page(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    page = client.get(f"/c/{world.conversation.pk}/").content.decode()
    token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    response = client.post(
        f"/c/{world.conversation.pk}/pin/", {"pinned": "1"}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 302
    world.conversation.refresh_from_db()
    assert world.conversation.pinned


def test_it_refuses_a_post_from_a_foreign_origin_over_https(world, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    client.get("/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(
        f"/c/{world.conversation.pk}/pin/",
        {"pinned": "1", "csrfmiddlewaretoken": token},
        headers={"Origin": "https://evil.example", "X-Forwarded-Proto": "https"},
        secure=True,
    )
    assert response.status_code == 403


# -- sessions -------------------------------------------------------------------------------
def test_it_rotates_the_session_and_csrf_token_on_login(world):
    client = Client()
    client.get("/accounts/login/")
    session = client.session
    session["visited"] = True
    session.save()
    before_session, before_csrf = session.session_key, client.cookies["csrftoken"].value
    response = client.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    assert redirects_to(response, "/")
    assert client.cookies["sessionid"].value != before_session
    assert client.cookies["csrftoken"].value != before_csrf
    from django.contrib.sessions.models import Session

    assert not Session.objects.filter(session_key=before_session).exists()


def test_it_rotates_the_session_on_sign_up(db, admin_user):
    client = Client()
    session = client.session
    session["visited"] = True
    session.save()
    before = session.session_key
    client.post(
        "/accounts/signup/",
        {
            "username": "newcomer",
            "password1": "a-long-unusual-passphrase-42",
            "password2": "a-long-unusual-passphrase-42",
        },
    )
    assert client.cookies["sessionid"].value not in ("", before)


def test_it_ends_the_session_on_logout(world):
    client = client_for(world.owner)
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert redirects_to(client.get("/"), "/accounts/login/")


# -- websockets -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", list(SOCKETS))
async def test_it_refuses_sockets_to_anonymous_and_pending_visitors(open_socket, pending_user, path):
    _who, code = SOCKETS[path]
    anonymous = await open_socket(None, path)
    pending = await open_socket(pending_user, path)
    assert (anonymous.connected, anonymous.close_code) == (False, code)
    assert (pending.connected, pending.close_code) == (False, code)


@pytest.mark.parametrize("path", list(SOCKETS))
async def test_it_refuses_or_accepts_sockets_by_role(open_socket, user, admin_user, path):
    who, code = SOCKETS[path]
    normal = await open_socket(user, path)
    staff = await open_socket(admin_user, path)
    assert staff.connected
    assert normal.connected == (who == APPROVED)
    if not normal.connected:
        assert normal.close_code == code


@pytest.mark.parametrize("path", list(SOCKETS))
@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1.evil.example", "null", None])
async def test_it_refuses_sockets_from_foreign_or_missing_origins(open_socket, admin_user, path, origin):
    socket = await open_socket(admin_user, path, origin=origin)
    assert not socket.connected


@pytest.mark.parametrize("path", list(SOCKETS))
async def test_it_refuses_sockets_of_deactivated_users(open_socket, admin_user, user, path):
    for account in (admin_user, user):
        cookie = await database_sync_to_async(session_cookie)(account)
        account.is_active = False
        await account.asave()
        socket = await open_socket(account, path, cookie=cookie)
        assert not socket.connected


async def _logout(cookie: str) -> None:
    client = AsyncClient()
    client.cookies["sessionid"] = cookie
    response = await client.post("/accounts/logout/")
    assert response.status_code == 302


@pytest.mark.parametrize("path", list(SOCKETS))
async def test_it_closes_both_sockets_on_logout_and_refuses_the_old_cookie(open_socket, admin_user, path):
    socket = await open_socket(admin_user, path)
    other_session = await open_socket(admin_user, path)  # another device: stays connected
    assert socket.connected
    if path == MODELS:
        await other_session.until("snapshot")
    await _logout(socket.cookie)
    assert await socket.closed_with() == 4401
    again = await open_socket(admin_user, path, cookie=socket.cookie)
    assert not again.connected
    assert await other_session.communicator.receive_nothing(0.2)  # nothing closed it


async def test_it_closes_every_socket_of_a_deactivated_account(open_socket, admin_user, user):
    chat = await open_socket(user, CHAT)
    second = await open_socket(user, CHAT)
    client = AsyncClient()
    await client.aforce_login(admin_user)
    response = await client.post(f"/users/{user.pk}/deactivate/")
    assert response.status_code == 302
    assert await chat.closed_with() == 4401
    assert await second.closed_with() == 4401


async def test_it_closes_the_models_socket_of_a_deactivated_admin(open_socket, admin_user):
    other_admin = await database_sync_to_async(make_user)("grace", staff=True)
    dashboard = await open_socket(other_admin, MODELS)
    await dashboard.until("snapshot")
    client = AsyncClient()
    await client.aforce_login(admin_user)
    await client.post(f"/users/{other_admin.pk}/deactivate/")
    assert await dashboard.closed_with() == 4401


async def test_it_signs_other_sessions_out_after_a_password_change(open_socket, user):
    here = await open_socket(user, CHAT)
    elsewhere = await open_socket(user, CHAT)
    client = AsyncClient()
    client.cookies["sessionid"] = here.cookie
    new = "a-long-unusual-passphrase-42"
    response = await client.post(
        "/accounts/password/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert response.status_code == 302
    assert await elsewhere.closed_with() == 4401
    assert await here.communicator.receive_nothing(0.2)  # the tab that changed it stays
    assert not (await open_socket(user, CHAT, cookie=elsewhere.cookie)).connected


async def test_it_tells_nothing_about_another_users_objects_over_the_socket(open_socket, user, other_user):
    owner = await open_socket(user)
    await owner.send(type="send", conversation=None, content=f"code {SECRET}", model="llama3.2", ref="a")
    turn = await owner.until("turn")
    intruder = await open_socket(other_user)
    ids = {
        "conversation": turn["conversation"],
        "reply": turn["reply"]["id"],
        "message": turn["user_message"]["id"],
    }
    for frame in (
        {"type": "subscribe", "conversation": ids["conversation"], "replies": {str(ids["reply"]): [0, 0]}},
        {"type": "send", "conversation": ids["conversation"], "content": "hi", "model": "llama3.2"},
        {"type": "stop", "reply": ids["reply"]},
        {"type": "regenerate", "reply": ids["reply"]},
        {"type": "retry", "reply": ids["reply"]},
        {"type": "edit", "message": ids["message"], "content": "mine now"},
        {"type": "subscribe", "conversation": 10**9},  # a missing one answers the same
    ):
        await intruder.send(**frame)
        error = await intruder.until("error")
        assert (
            error["code"] == "not_found"
            and error["message"] == "That conversation or message does not exist."
        )
    await owner.until("done", reply=ids["reply"])
    assert await intruder.communicator.receive_nothing(0.2)
    assert all(SECRET not in str(frame) for frame in intruder.frames)
    rows = await database_sync_to_async(list)(
        Message.objects.filter(conversation_id=ids["conversation"]).values_list("content", flat=True)
    )
    assert rows[0] == f"code {SECRET}" and len(rows) == 2


async def test_it_closes_the_models_socket_of_a_demoted_admin_at_once(open_socket, admin_user):
    """A demoted admin keeps their account and chat, but not the dashboard's live feed: their
    models socket closes when they are demoted, not at their next action."""
    from models_admin.services.events import broadcast_operation

    grace = await database_sync_to_async(make_user)("grace", staff=True)
    dashboard = await open_socket(grace, MODELS)
    chat = await open_socket(grace, CHAT)
    await dashboard.until("snapshot")
    client = AsyncClient()
    await client.aforce_login(admin_user)
    response = await client.post(f"/users/{grace.pk}/demote/")
    assert response.status_code == 302
    await broadcast_operation({"id": 1, "model": f"secret-{SECRET}", "status": "running"})
    assert await dashboard.closed_with() == 4403
    assert all(SECRET not in str(frame) for frame in dashboard.frames)
    await chat.send(type="ping")  # still a user: the chat socket stays
    await chat.until("pong")
