"""The shared small world of the suite: users, the Ollama double, a live daphne, a browser.

Fixtures build on each other: `double` → `ollama` (settings point at it); `user`,
`other_user`, `admin_user`, `pending_user`; `server` (daphne in a subprocess on the test
database, talking to the double); `browser` → `page` (Debian's Chromium via Playwright).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.ollama_double import OllamaDouble

ROOT = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))
PASSWORD = "correct-horse-battery-staple"
# Test processes sharing one Redis (xdist workers, parallel runs) must not hear each other.
os.environ["CHANNELS_PREFIX"] = f"test{os.getpid()}"


def require(condition: bool, what: str) -> None:
    """Skip when a service is truly absent on a laptop; in CI, fail instead (never skip silently)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} not available (REQUIRE it in CI)")


@pytest.fixture(autouse=True, scope="session")
def _own_channel_prefix():
    """Give this process's Redis channel layer and cache the prefix its daphne children get.

    Django read its settings before this file set CHANNELS_PREFIX: without this, every test
    process (both xdist workers, a parallel run) would count the same user ids' messages in
    one rate-limit key of the shared Redis cache.
    """
    from channels.layers import channel_layers
    from django.conf import settings
    from django.core.cache import caches

    prefix = os.environ["CHANNELS_PREFIX"]
    config = settings.CHANNEL_LAYERS["default"].get("CONFIG", {})
    if "prefix" in config:
        config["prefix"] = prefix
        channel_layers.backends.clear()
    if "KEY_PREFIX" in settings.CACHES["default"]:
        settings.CACHES["default"]["KEY_PREFIX"] = prefix
        caches.close_all()
        for alias in list(caches.settings):
            with contextlib.suppress(AttributeError):
                delattr(caches._connections, alias)  # made again, with the prefix, when next used


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Give each test its own channel layer: a layer's queues, locks and Redis connections
    belong to the event loop that first used them, and each async test has a loop of its own
    (a Redis layer carried over from an earlier test's loop hung its receivers)."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
async def ws_closer():
    """Collect in-process websocket communicators; disconnect them before the test's loop ends.

    A consumer still running when the loop shuts down is cancelled by the shutdown itself, and
    a channels-redis receive cancelled that way can hang the test for ever.
    """
    from chat import fanout

    opened: list = []
    yield opened
    for communicator in opened:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(communicator.disconnect(), 5)
    await fanout.listener_shutdown()  # the chat sockets started this process's listener


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# -- Ollama double -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def _double_session() -> Iterator[OllamaDouble]:
    double = OllamaDouble().start()
    yield double
    double.stop()


@pytest.fixture
def double(_double_session: OllamaDouble) -> Iterator[OllamaDouble]:
    """Return the session's Ollama double, reset to its seed models and no faults."""
    from webui import fleet

    _double_session.reset()
    fleet.models_changed()  # this process's model lists, as the double's models changed
    yield _double_session
    _double_session.reset()
    fleet.models_changed()


@pytest.fixture
def ollama(double: OllamaDouble, settings) -> OllamaDouble:
    """Point the app's gateway (in this process) at the double."""
    settings.OLLAMA_HOST = double.url
    return double


# -- users ---------------------------------------------------------------------------------
def make_user(username: str, *, status: str = "approved", staff: bool = False):
    from webui.models import Profile

    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    if staff:
        user.is_staff = user.is_superuser = True
        user.save()
    Profile.objects.create(user=user, status=status)
    return user


@pytest.fixture
def admin_user(db):
    return make_user("ada", staff=True)


@pytest.fixture
def user(db, admin_user):
    return make_user("bob")


@pytest.fixture
def other_user(db, admin_user):
    return make_user("eve")


@pytest.fixture
def pending_user(db, admin_user):
    return make_user("pat", status="pending")


@pytest.fixture
def user_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(admin_user) -> Client:  # overrides pytest-django's, on our admin
    client = Client()
    client.force_login(admin_user)
    return client


def session_cookie(user) -> str:
    """Return a session id logged in as `user`, for websocket clients and browsers."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


# -- live daphne ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # polling a port that is not yet bound: no event to await
    raise TimeoutError(f"daphne did not listen on {port} within {timeout}s")


@dataclass
class LiveServer:
    url: str
    ws_url: str
    port: int
    process: subprocess.Popen
    log_path: Path
    double: OllamaDouble

    @property
    def origin(self) -> str:
        return self.url

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def database_url(settings_dict: dict) -> str:
    """Return a DATABASE_URL for the (test) database Django is connected to."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


def start_daphne(database: str, double: OllamaDouble, log_dir: Path, **env: str) -> LiveServer:
    """Start daphne on a free port against `database` (a DATABASE_URL) and the double."""
    port = free_port()
    log_path = log_dir / f"daphne-{port}.log"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webui.settings",
        "DATABASE_URL": database,
        "OLLAMA_HOST": double.url,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        # One daphne serves a worker's whole session: a model list cached by one test (hostile
        # names, say) must not become the next test's default model.
        "OLLAMA_MODELS_TTL": "0",
        **env,
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "webui.asgi:application"],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, process)
    return LiveServer(
        url=f"http://127.0.0.1:{port}",
        ws_url=f"ws://127.0.0.1:{port}",
        port=port,
        process=process,
        log_path=log_path,
        double=double,
    )


def stop_daphne(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def _server_session(
    django_db_setup, django_db_blocker, _double_session, tmp_path_factory
) -> Iterator[LiveServer]:
    from django.db import connection

    with django_db_blocker.unblock():
        database = database_url(connection.settings_dict)
    server = start_daphne(database, _double_session, tmp_path_factory.mktemp("daphne"))
    yield server
    stop_daphne(server)


@pytest.fixture
def server(_server_session: LiveServer, transactional_db, double) -> LiveServer:
    """Return a live daphne serving the test database and talking to the double."""
    if _server_session.process.poll() is not None:
        raise RuntimeError("daphne died:\n" + _server_session.log())
    return _server_session


# -- browser -------------------------------------------------------------------------------
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    """Launch Debian's Chromium for one module (Playwright's sync API holds an event loop in
    this thread while it runs, which async tests of other modules must not meet)."""
    chromium = shutil.which("chromium")
    require(chromium is not None, "Debian's chromium")
    from playwright.sync_api import sync_playwright

    # The ORM calls browser tests make between steps are plain synchronous calls; Django
    # only sees Playwright's loop in this thread.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def browser_login(page, server: LiveServer, user) -> None:
    """Put `user`'s session cookie into the page's browser context."""
    page.context.add_cookies(
        [{"name": "sessionid", "value": session_cookie(user), "url": server.url, "httpOnly": True}]
    )
