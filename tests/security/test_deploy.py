"""Production settings: `check --deploy`, security headers, the CSP, cookies, secrets kept out.

`HTTPS=1` is how a deployment behind a TLS proxy says so; the live tests start daphne with it
and speak to it as the proxy would (X-Forwarded-Proto: https).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from django.test import Client
from django.urls import include, path

from chat.models import Conversation, Message
from models_admin.models import OllamaServer
from tests.conftest import PASSWORD, ROOT, free_port
from tests.security.conftest import chat_turn, live_password
from tests.security.routes import ACCESS, PUBLIC, ROUTES, SIGNED_IN, STAFF, sample_url

PRODUCTION = {
    "DEBUG": "0",
    "HTTPS": "1",
    "ALLOWED_HOSTS": "chat.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
}


def run_python(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DATA_DIR": str(tmp_path), "SECRET_KEY": secrets.token_urlsafe(50), **env}
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return subprocess.run(
        [sys.executable, *code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_it_passes_check_deploy_with_production_variables(tmp_path):
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_turns_on_every_https_protection_with_https(tmp_path):
    names = [
        "DEBUG",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_PROXY_SSL_HEADER",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "LANGUAGE_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "CSRF_COOKIE_HTTPONLY",
        "LANGUAGE_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE",
        "CSRF_COOKIE_SAMESITE",
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "SECURE_REFERRER_POLICY",
        "X_FRAME_OPTIONS",
    ]
    code = f"import json, webui.settings as s; print(json.dumps({{n: getattr(s, n) for n in {names!r}}}))"
    result = run_python(["-c", code], PRODUCTION, tmp_path)
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "LANGUAGE_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_HTTPONLY": True,
        "LANGUAGE_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SAMESITE": "Lax",
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
        "X_FRAME_OPTIONS": "DENY",
    }


# -- headers on every page ----------------------------------------------------------------
def csp_directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


def test_it_sends_the_security_headers_and_a_strict_csp(user_client, ollama):
    response = user_client.get("/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]
    assert "Strict-Transport-Security" not in response  # plain HTTP: HSTS would be ignored anyway
    policy = csp_directives(response)
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'self'" and policy["form-action"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["connect-src"] == "'self' ws://testserver"  # this host only


@pytest.mark.parametrize("path", ["/accounts/login/", "/healthz", "/no-such-page/", "/static/css/app.css"])
def test_it_sends_the_csp_on_every_kind_of_response(db, path):
    response = Client().get(path)
    assert "script-src 'self'" in response["Content-Security-Policy"]


class _Scripts(HTMLParser):
    """Collect what a page would execute: script elements, event-handler attributes, js: URLs."""

    def __init__(self):
        super().__init__()
        self.inline_scripts: list[str] = []
        self.handlers: list[str] = []
        self.javascript_urls: list[str] = []
        self.external: list[str] = []
        self._in_inline = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(f"<{tag} {name}>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                ("javascript:", "data:text")
            ):
                self.javascript_urls.append(f"<{tag} {name}={value}>")
            if name in ("src", "href") and (value or "").startswith(("http:", "https:", "//")):
                self.external.append(value)
        if tag == "script":
            kind = attributes.get("type", "")
            if not attributes.get("src") and kind != "application/json":
                self._in_inline = True
                self.inline_scripts.append("")

    def handle_data(self, data):
        if self._in_inline:
            self.inline_scripts[-1] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_inline = False


def _page_urls() -> list[tuple[str, str]]:
    """Return (route, who) for every page that answers GET, from the access matrix."""
    return [
        (route.name, ACCESS[route.name][0])
        for route in ROUTES
        if route.name in ACCESS
        and "GET" in ACCESS[route.name][1]
        and route.name not in ("healthz", "readyz", "health-banner")
    ]


@pytest.mark.parametrize(("name", "who"), _page_urls())
def test_it_serves_pages_without_inline_script_or_handlers(name, who, admin_user, user, pending_user, ollama):
    conversation = Conversation.objects.create(owner=user, title="t", model="llama3.2:latest")
    message = Message.objects.create(conversation=conversation, role="user", content="hi")
    account = {PUBLIC: None, SIGNED_IN: pending_user, STAFF: admin_user}.get(who, user)
    client = Client()
    if account is not None:
        client.force_login(account)
    route = next(route for route in ROUTES if route.name == name)
    server = OllamaServer.objects.create(name="spare", base_url=ollama.url, enabled=False)
    url = sample_url(
        route,
        conversation=conversation.pk,
        before=message.pk + 1,
        account=pending_user.pk,
        operation=1,
        server=server.pk,
    )
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    page = _Scripts()
    page.feed(response.content.decode())
    assert page.inline_scripts == [] and page.handlers == [] and page.javascript_urls == []
    assert page.external == []  # everything comes from this site: it works offline


# -- live, behind a TLS proxy ---------------------------------------------------------------
def cookies_of(response: httpx.Response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


class ProxiedBrowser:
    """A browser behind the TLS proxy: https to the proxy, plain http from proxy to daphne.

    Cookies are kept by hand: an HTTP client would rightly refuse to send Secure cookies over
    the http:// hop that the proxy makes.
    """

    def __init__(self, server):
        self.server = server
        self.cookies: dict[str, str] = {}
        self.origin = f"https://127.0.0.1:{server.port}"

    def request(self, method: str, path: str, **options) -> httpx.Response:
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        headers = {"X-Forwarded-Proto": "https", "Origin": self.origin, "Cookie": cookie}
        response = httpx.request(method, self.server.url + path, headers=headers, **options)
        for name, header in cookies_of(response).items():
            self.cookies[name] = header.split("=", 1)[1].split(";", 1)[0]
        return response

    def csrf_token(self, path: str) -> str:
        html = self.request("GET", path).text
        marker = (
            'name="csrfmiddlewaretoken" value="'
            if "csrfmiddlewaretoken" in html
            else 'name="csrf-token" content="'
        )
        return html.split(marker, 1)[1].split('"', 1)[0]


@pytest.fixture
def https_server(own_server):
    return own_server(HTTPS="1", SECRET_KEY="the-signing-secret-" + "x" * 40)


def test_it_redirects_plain_http_to_https_behind_the_proxy(https_server):
    response = httpx.get(https_server.url + "/accounts/login/", headers={"X-Forwarded-Proto": "http"})
    assert response.status_code == 301 and response.headers["location"].startswith("https://")


def test_it_sends_hsts_and_secure_cookies_over_https(https_server, user):
    live_password(user)
    browser = ProxiedBrowser(https_server)
    page = browser.request("GET", "/accounts/login/")
    assert page.status_code == 200
    assert page.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert (
        f"connect-src 'self' wss://127.0.0.1:{https_server.port}" in page.headers["content-security-policy"]
    )
    csrf = cookies_of(page)["csrftoken"]
    assert "Secure" in csrf and "HttpOnly" in csrf and "SameSite=Lax" in csrf
    token = page.text.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    login = browser.request(
        "POST",
        "/accounts/login/",
        data={"username": "bob", "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert login.status_code == 302, login.text[:300]
    session = cookies_of(login)["sessionid"]
    assert "Secure" in session and "HttpOnly" in session and "SameSite=Lax" in session
    token = browser.csrf_token("/")
    language = browser.request(
        "POST", "/i18n/setlang/", data={"language": "zh-hans", "csrfmiddlewaretoken": token}
    )
    cookie = cookies_of(language)["django_language"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


# -- secrets stay out of logs and error pages -----------------------------------------------
SECRET_KEY = "sk-never-show-" + "q" * 40
OLLAMA_TOKEN = "ollama-bearer-never-show"


def test_it_keeps_secrets_and_passwords_out_of_the_log(own_server, user):
    """Log in right and wrong, sign up, change a password, chat and fail: nothing secret is logged."""
    import asyncio

    server = own_server(
        SECRET_KEY=SECRET_KEY,
        OLLAMA_HEADERS=json.dumps({"Authorization": f"Bearer {OLLAMA_TOKEN}"}),
        LOG_LEVEL="DEBUG",
    )
    live_password(user)
    wrong, new = "wrong-password-never-show", "new-passphrase-never-show-42"
    client = httpx.Client(base_url=server.url, headers={"Origin": server.url})

    def token(path: str) -> str:
        html = client.get(path).text
        return html.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]

    for password in (wrong, PASSWORD):
        client.post(
            "/accounts/login/",
            data={"username": "bob", "password": password, "csrfmiddlewaretoken": token("/accounts/login/")},
        )
    client.post(
        "/accounts/password/",
        data={
            "old_password": PASSWORD,
            "new_password1": new,
            "new_password2": new,
            "csrfmiddlewaretoken": token("/accounts/password/"),
        },
    )
    session = client.cookies["sessionid"]
    server.double.configure(fail_status=500)
    done = asyncio.run(chat_turn(server, session, "tell me a secret"))
    assert done["status"] == "error" and OLLAMA_TOKEN not in json.dumps(done)
    request_headers = server.double.requests[-1].get("headers", {})
    assert not request_headers or f"Bearer {OLLAMA_TOKEN}" in str(request_headers)  # it was sent
    log = server.log()
    for secret in (SECRET_KEY, OLLAMA_TOKEN, PASSWORD, wrong, new, session, client.cookies["csrftoken"]):
        assert secret not in log, f"{secret[:12]}… is in the server log"


def boom(request):
    raise RuntimeError("the view failed")  # the traceback holds settings, not the page


urlpatterns = [path("boom/", boom), path("", include("webui.urls"))]


def test_it_shows_no_traceback_setting_or_secret_on_error_pages(db, settings, caplog):
    settings.ROOT_URLCONF = __name__
    settings.SECRET_KEY = SECRET_KEY
    settings.OLLAMA_HEADERS = {"Authorization": f"Bearer {OLLAMA_TOKEN}"}
    client = Client(raise_request_exception=False)
    failed = client.post("/boom/", {"password": "typed-password-never-show"})
    missing = client.get("/no/such/page/")
    assert failed.status_code == 500 and missing.status_code == 404
    for response in (failed, missing):
        body = response.content.decode()
        assert "Traceback" not in body and "SECRET_KEY" not in body and SECRET_KEY not in body
        assert OLLAMA_TOKEN not in body and "urlpatterns" not in body.lower() and "webui.urls" not in body
    assert "Internal Server Error: /boom/" in caplog.text  # logged for the operator…
    assert "typed-password-never-show" not in caplog.text  # …without what was posted


def test_it_masks_secrets_on_the_admins_settings_page(admin_user, settings, monkeypatch, ollama):
    secrets_set = {
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": "postgres://webui:db-pa55-never-show@db.internal:5432/webui",
        "REDIS_URL": "redis://:redis-pa55-never-show@cache.internal:6379/0",
        "OLLAMA_HEADERS": json.dumps({"Authorization": f"Bearer {OLLAMA_TOKEN}"}),
    }
    for name, value in secrets_set.items():
        monkeypatch.setenv(name, value)
    settings.SECRET_KEY = SECRET_KEY
    settings.OLLAMA_HEADERS = {"Authorization": f"Bearer {OLLAMA_TOKEN}"}
    admin_client = Client()
    admin_client.force_login(admin_user)  # after the key changed: sessions are signed with it
    page = admin_client.get("/settings/").content.decode()
    assert "SECRET_KEY" in page and "Authorization" in page  # listed…
    for secret in (SECRET_KEY, "db-pa55-never-show", "redis-pa55-never-show", OLLAMA_TOKEN):
        assert secret not in page  # …but masked


def test_it_never_shows_credentials_put_in_ollama_host(user_client, settings):
    settings.OLLAMA_HOST = f"http://admin:pa55word-never-show@127.0.0.1:{free_port()}"
    from webui.health import health_cache_clear

    health_cache_clear()
    for url in ("/healthz", "/healthz/banner", "/"):
        assert "pa55word" not in user_client.get(url).content.decode(), url
    health_cache_clear()


def test_it_answers_nul_characters_with_a_readable_400(user_client, user):
    conversation = Conversation.objects.create(owner=user, title="t")
    for response in (
        user_client.get("/sidebar/?q=a%00b"),
        user_client.post(f"/c/{conversation.pk}/rename/", {"title": "a\x00b"}),
        user_client.post("/default-model/", {"model": "x\x00"}),
    ):
        assert response.status_code == 400
        assert "NUL character" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.title == "t"
