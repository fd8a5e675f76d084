"""Fuzzed input (Hypothesis): websocket frames and every form get a clear error, never a 500 or
an "internal" error; the server keeps serving and nothing is written half-way.

Examples are derandomized (the same every run, so CI is repeatable) and kept in memory only.
"""

from __future__ import annotations

import json
import string
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from chat import generation
from chat.models import Conversation, Message
from models_admin.models import OllamaServer, Operation
from models_admin.names import model_name_parse
from tests.conftest import make_user, session_cookie
from tests.security.conftest import assert_clean_log, live_client
from tests.security.routes import MODELS, ROUTES, sample_url

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Forms are slower to try: fewer examples, and a failure is reported unshrunk (shrinking a
# sequence of page requests takes minutes).
FORMS = settings(FUZZ, max_examples=30, phases=[Phase.explicit, Phase.reuse, Phase.generate])

# Text that has broken web apps before: traversal, spaces, NUL, direction marks, huge strings.
ODD_TEXT = [
    "",
    " ",
    "../../x",
    "a b",
    "x" * 10_000,
    "\x00",
    "a\x00b",
    "%00",
    "\u202eevil",
    "\ufeff",
    "💥" * 300,
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "\r\n\r\n",
    "NaN",
    "1e309",
    "-1",
    "9" * 40,
    "//evil.example",
    "https://evil.example/",
    "llama3.2",
    "library/llama3.2:latest",
]
texts = st.one_of(st.sampled_from(ODD_TEXT), st.text(max_size=40), st.text(st.characters(), max_size=300))

# -- websocket frames -------------------------------------------------------------------------
SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**63, 2**63 - 1, 10**30, 1.5, float("inf"), float("nan")]),
    st.floats(),
    texts,
    SURROGATES,
    st.sampled_from(["1", " 7 ", "٣", "1e5", "x" * 100_001]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
FRAME_TYPES = ["ping", "subscribe", "send", "regenerate", "retry", "edit", "stop"]
FIELDS = ["conversation", "content", "model", "ref", "reply", "message", "replies"]
frames = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(FRAME_TYPES), json_values)},
    optional={field: json_values for field in FIELDS},
)
raw_frames = st.one_of(
    frames.map(json.dumps),
    st.text(min_size=1, max_size=200),  # not JSON, or JSON that is not an object
    st.sampled_from(
        ["[" * 5000, '{"type": "send", "content": ' + "[" * 3000, "null", "[]", '"send"', "1e999"]
    ),
)

ERROR_CODES = {"invalid", "too_large", "unknown_type", "not_found", "empty", "too_long", "rate_limited"}


@pytest.fixture
async def fuzz_socket(open_socket, double, user, settings):
    settings.MAX_MESSAGES_PER_MINUTE = 0  # the limit would answer most sends; fuzz deeper
    socket = await open_socket(user)
    await socket.send(type="send", conversation=None, content="a first message", model="llama3.2", ref="seed")
    await socket.until("turn", ref="seed")
    return socket


@given(text=raw_frames)
@FUZZ
async def test_it_answers_any_frame_clearly_and_keeps_serving(fuzz_socket, text):
    await fuzz_socket.send_raw(text)
    await fuzz_socket.send(type="ping")
    while (frame := await fuzz_socket.receive(timeout=10))["type"] != "pong":
        if frame["type"] == "error":
            assert frame["code"] in ERROR_CODES, (text[:200], frame)
            assert isinstance(frame["message"], str) and frame["message"]


@database_sync_to_async
def assert_nothing_half_written() -> None:
    for conversation in Conversation.objects.all():
        roles = list(conversation.messages.order_by("id").values_list("role", flat=True))
        assert roles and roles[0] == "user", roles  # a conversation is born with its message
        assert len(conversation.title) <= 200 and "\x00" not in conversation.title
        assert len(conversation.model) <= 200 and "\x00" not in conversation.model
    for content in Message.objects.values_list("content", flat=True):
        assert "\x00" not in content
    assert not Message.objects.filter(role="user", content="").exists()


async def test_it_writes_nothing_half_way_from_fuzzed_frames(open_socket, double, user, settings):
    settings.MAX_MESSAGES_PER_MINUTE = 0
    socket = await open_socket(user)
    for text in [
        json.dumps({"type": "send", "conversation": None, "content": "\x00\x00", "model": "llama3.2"}),
        json.dumps({"type": "send", "conversation": None, "content": "ok\x00", "model": "m\x00odel"}),
        json.dumps(
            {
                "type": "send",
                "conversation": None,
                "content": "a\ud800b",
                "model": "llama3.2",
                "ref": "\udfff",
            }
        ),
        json.dumps({"type": "send", "conversation": None, "content": "x", "model": "\ud800"}),
        json.dumps({"type": "subscribe", "conversation": 1, "replies": {"1": ["a", None]}}),
        json.dumps({"type": "subscribe", "conversation": 1, "replies": {"1": [1e400, -5]}}),
    ]:
        await socket.send_raw(text)
        await socket.send(type="ping")
        while (frame := await socket.receive(timeout=10))["type"] != "pong":
            if frame["type"] == "error":
                assert frame["code"] in ERROR_CODES, (text, frame)
    await generation.generation_drain()
    await assert_nothing_half_written()


async def test_it_refuses_lone_surrogates_binary_and_invalid_utf8_through_daphne(server, user):
    """The frames a browser's JSON.stringify can make, and two no browser makes, against daphne."""
    from websockets.exceptions import ConnectionClosed

    cookie = await database_sync_to_async(session_cookie)(user)
    client = await live_client(server, cookie)
    for text in (
        '{"type": "send", "conversation": null, "content": "", "ref": "\\ud800"}',
        '{"type": "send", "conversation": null, "content": "hi \\udc00", "model": "llama3.2", "ref": 1}',
        '{"type": "stop", "reply": "x", "ref": "\\udbff\\udbff"}',
        '{"type": "\\ud800"}',
    ):
        await client.socket.send(text)
        error = await client.until("error")
        assert error["code"] in ("invalid", "unknown_type"), error
    await client.socket.send(b'{"type": "ping"}')  # binary
    assert (await client.until("error"))["code"] == "invalid"
    await client.send(type="ping")
    await client.until("pong")
    await client.socket.send(b'{"type": "ping", "x": "\xff\xfe"}', text=True)  # not UTF-8
    with pytest.raises(ConnectionClosed) as closed:  # a protocol error: the connection is failed
        await client.until("pong", timeout=5)
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1007  # dropped, or "invalid payload"
    again = await live_client(server, cookie)  # the server keeps serving
    await again.send(type="ping")
    await again.until("pong")
    await again.close()
    assert not await Message.objects.filter(content__contains="hi ").aexists()
    assert_clean_log(server.log())


async def test_it_drops_a_frame_past_daphnes_cap_before_reading_it_all(server, user):
    """Past 1 MiB daphne fails the connection (1009) without buffering the rest: a client cannot
    make the server hold a 100 MB frame. The app's own, lower limit answers below that."""
    from websockets.exceptions import ConnectionClosed

    cookie = await database_sync_to_async(session_cookie)(user)
    client = await live_client(server, cookie, max_size=None)
    huge = json.dumps({"type": "send", "conversation": None, "content": "x" * (3 << 20), "model": "llama3.2"})
    with pytest.raises(ConnectionClosed) as closed:
        await client.socket.send(huge)
        await client.until("pong", timeout=5)
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009  # "message too big"
    again = await live_client(server, cookie)
    await again.send(type="send", conversation=None, content="y" * 600_000, model="llama3.2", ref="big")
    assert (await again.until("error"))["code"] == "too_large"  # under 1 MiB: the app answers
    await again.send(type="ping")
    await again.until("pong")
    await again.close()
    assert not await Message.objects.filter(content__startswith="xxx").aexists()
    assert_clean_log(server.log())


# -- the models socket (admins) ---------------------------------------------------------------
MODEL_FRAME_TYPES = ["snapshot", "pull", "push", "cancel"]
model_frames = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(MODEL_FRAME_TYPES), json_values)},
    optional={field: json_values for field in ("model", "server", "operation")},
)
raw_model_frames = st.one_of(
    model_frames.map(json.dumps),
    st.text(min_size=1, max_size=200),
    st.sampled_from(["[" * 5000, '{"type": "pull", "model": ' + "[" * 3000, "null", "[]", "1e999"]),
)


def _would_start_an_operation(text: str) -> bool:
    """Return True for a pull or push of a valid name: it would really start one."""
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(frame, dict)
        and frame.get("type") in ("pull", "push")
        and isinstance(frame.get("model"), str)
        and not _invalid_name(frame["model"])
    )


@pytest.fixture
async def models_socket(open_socket, double, admin_user):
    socket = await open_socket(admin_user, MODELS)
    await socket.until("snapshot")
    return socket


@given(text=raw_model_frames)
@FUZZ
async def test_it_answers_any_frame_on_the_models_socket_clearly_and_keeps_serving(models_socket, text):
    assume(not _would_start_an_operation(text))
    await models_socket.send_raw(text)
    await models_socket.send(type="snapshot")
    while (frame := await models_socket.receive(timeout=10))["type"] != "snapshot":
        if frame["type"] == "error":
            assert isinstance(frame["message"], str) and frame["message"], (text[:200], frame)
            assert "Traceback" not in frame["message"]
    assert not await Operation.objects.aexists()  # nothing was started half-way


# -- forms ------------------------------------------------------------------------------------
def safe_redirect(response) -> bool:
    """Return True unless the response redirects to another site (an open redirect)."""
    if response.status_code not in (301, 302, 303, 307, 308):
        return True
    location = urlsplit(response["Location"])
    return not location.netloc and not response["Location"].startswith(("//", "\\\\", "/\\"))


def check(response, *allowed: int) -> None:
    """Assert a clear answer: one of `allowed`, or 400 for a NUL character; never a 500."""
    assert response.status_code < 500, response.status_code
    if response.status_code == 400 and 400 not in allowed:
        assert "NUL character" in response.content.decode()
    else:
        assert response.status_code in allowed, response.status_code
    assert safe_redirect(response), response["Location"]


@pytest.fixture
def people(db, ollama):
    admin = make_user("ada", staff=True)
    owner = make_user("bob")
    conversation = Conversation.objects.create(owner=owner, title="kept", model="llama3.2:latest")
    Message.objects.create(conversation=conversation, role="user", content="hi")
    user_client, admin_client = Client(), Client()
    user_client.force_login(owner)
    admin_client.force_login(admin)
    return {"user": user_client, "admin": admin_client, "conversation": conversation, "owner": owner}


@given(username=texts, password=texts, next_url=texts)
@FORMS
def test_it_answers_fuzzed_logins_and_sign_ups(people, username, password, next_url):
    check(
        Client().post(f"/accounts/login/?next={next_url}", {"username": username, "password": password}),
        200,
        302,
        400,
        429,
    )
    check(
        Client().post("/accounts/login/", {"username": username, "password": password, "next": next_url}),
        200,
        302,
        400,
        429,
    )
    check(
        Client().post(
            "/accounts/signup/", {"username": username, "password1": password, "password2": password}
        ),
        200,
        302,
        400,
        403,
        429,
    )
    check(
        people["user"].post(
            "/accounts/password/",
            {"old_password": password, "new_password1": username, "new_password2": username},
        ),
        200,
        400,
    )
    check(Client().post("/i18n/setlang/", {"language": username, "next": next_url}), 302, 400)


@given(title=texts, prompt=texts, number=texts, model=texts, query=texts)
@FORMS
def test_it_answers_fuzzed_chat_forms(people, title, prompt, number, model, query):
    client, conversation = people["user"], people["conversation"]
    base = f"/c/{conversation.pk}"
    check(client.post(f"{base}/rename/", {"title": title}), 302, 400)
    options = {key: number for key in ("temperature", "top_p", "top_k", "num_ctx", "seed", "num_predict")}
    check(
        client.post(
            f"{base}/settings/",
            {"system_prompt": prompt, "keep_alive": number, "think": title, "model": model, **options},
        ),
        302,
        400,
    )
    check(client.post(f"{base}/model/", {"model": model}), 302, 400)
    check(client.post("/default-model/", {"model": model}), 204, 400)
    check(client.post(f"{base}/pin/", {"pinned": number}), 302, 400)
    check(
        client.get("/sidebar/", {"q": query, "cursor": number, "current": title, "archived": number}),
        200,
        400,
    )
    check(client.get(f"{base}/history/", {"before": number}), 200, 400, 404)
    check(client.get("/", {"q": query}), 200, 400)
    conversation.refresh_from_db()
    assert conversation.title and len(conversation.title) <= 200 and "\x00" not in conversation.title
    assert "\x00" not in conversation.system_prompt and len(conversation.model) <= 200
    assert set(conversation.options) <= {
        "temperature",
        "top_p",
        "top_k",
        "num_ctx",
        "seed",
        "num_predict",
        "keep_alive",
        "think",
    }
    json.dumps(conversation.options, allow_nan=False)  # what Ollama gets is valid JSON


def slug(text: str) -> str:
    return "".join(character for character in text if character in string.ascii_letters)[:20] or "x"


def _invalid_name(name: str) -> bool:
    try:
        model_name_parse(name)
    except Exception:
        return True
    return False


@given(name=texts, other=texts, text=texts, number=texts)
@FORMS
def test_it_answers_fuzzed_model_forms_before_asking_ollama(people, name, other, text, number):
    assume(_invalid_name(name))  # a valid name would start a real pull in the background
    client = people["admin"]
    check(client.post("/models/pull/", {"model": name}), 400)
    check(client.post("/models/push/", {"model": name}), 302)
    check(
        client.post(
            "/models/create/",
            {"name": name, "base": other, "system": text, "temperature": number, "num_ctx": number},
        ),
        400,
    )
    check(client.post("/models/copy/", {"source": name, "destination": other}), 302)
    check(client.post("/models/delete/", {"model": name, "confirm": "1"}), 200, 302)
    check(client.post("/models/unload/", {"model": name}), 200, 302)
    check(client.post("/models/embed/", {"model": name, "text": text}), 200)
    check(client.get("/models/", {"q": text, "sort": other, "dir": number}), 200)
    check(client.get(f"/models/{name}/"), 404, 200)
    check(
        client.post(f"/users/{people['owner'].pk}/{slug(other)}/"),
        302,
        404,
    )
    assert not Operation.objects.exists()  # nothing was started


def test_it_asked_ollama_nothing_for_invalid_names(people, ollama):
    for name in ("../../x", "a b", "x" * 10_000, "a\x00b", "\u202eevil"):
        people["admin"].post("/models/pull/", {"model": name})
        people["admin"].post("/models/copy/", {"source": "llama3.2", "destination": name})
        people["admin"].post("/models/delete/", {"model": name, "confirm": "1"})
    asked = [entry["path"] for entry in ollama.requests]
    assert not {"/api/pull", "/api/copy", "/api/delete"} & set(asked), asked
    assert get_user_model().objects.count() == 2


@given(name=texts, address=texts, headers=texts)
@FORMS
def test_it_answers_fuzzed_server_forms(people, ollama, name, address, headers):
    """Add and edit a server with odd fields. Never enabled: a fuzzed address is never contacted."""
    client = people["admin"]
    spare, _ = OllamaServer.objects.get_or_create(
        name="spare", defaults={"base_url": ollama.url, "enabled": False}
    )
    fields = {"name": name, "base_url": address, "headers_text": headers}
    check(client.post("/models/servers/add/", fields), 302, 400)
    check(client.post(f"/models/servers/{spare.pk}/", fields), 302, 400)
    check(client.post("/models/servers/test/", {"server": name}), 200, 302)
    check(client.post("/preferences/theme/", {"theme": name}), 204, 400)
    for server in OllamaServer.objects.all():
        assert server.name.strip() and "\x00" not in server.name + server.base_url
        assert not server.enabled or server.base_url == ollama.url
    OllamaServer.objects.exclude(pk=spare.pk).delete()


def _big_id_urls() -> list[tuple[str, str]]:
    big = 10**30  # past every integer column
    return [
        (route.name, sample_url(route, conversation=big, before=big, account=big, operation=big, server=big))
        for route in ROUTES
        if "<int:" in route.pattern
    ]


@pytest.mark.parametrize(("name", "url"), _big_id_urls())
def test_it_answers_ids_past_every_integer_column_with_not_found(people, name, url):
    """A 31-digit id in a URL: 404 (or the redirect of a form that found nothing), never a 500."""
    for method in ("get", "post"):
        response = getattr(people["admin"], method)(url)
        assert response.status_code in (302, 404, 405), (method, response.status_code)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5:99999",
        "a:b:c",
        "http://[::1",
        "http://x:-1",
        "http://x:abc",
        "ex\x7fample",
        "\U000e5f68\x7f%",
    ],
)
def test_it_refuses_server_addresses_no_http_client_could_use(people, address):
    """Found by the fuzzer: these were saved (or crashed the form), then crashed "Test"."""
    client = people["admin"]
    response = client.post("/models/servers/add/", {"name": "odd", "base_url": address})
    assert response.status_code == 400
    assert "Enter an http or https address such as 10.0.0.5:11434." in response.content.decode()
    assert not OllamaServer.objects.filter(name="odd").exists()
