"""Every page, in Chromium, under the real Content-Security-Policy: no violation, no error.

The page list comes from the access matrix (every route that answers GET), so a new page is
checked here too. The chat and the dashboard are also used, not just opened: a streamed reply
with code and math, htmx swaps, dialogs and both websockets.
"""

from __future__ import annotations

import pytest

from chat.models import Conversation, Message
from models_admin.models import OllamaServer, Operation
from tests.security.browser import markdown_settled, watched_page
from tests.security.routes import ACCESS, PUBLIC, ROUTES, SIGNED_IN, STAFF, sample_url

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

REPLY = "Here is code:\n\n```python\nprint('hi')\n```\n\nand math $e^{i\\pi} + 1 = 0$ and a [link](https://example.com)."
PAGES = [
    route
    for route in ROUTES
    if route.name in ACCESS
    and "GET" in ACCESS[route.name][1]
    and route.name not in ("healthz", "readyz", "health-banner")  # JSON and a fragment
]


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.mark.parametrize("route", PAGES, ids=str)
def test_it_serves_every_page_without_a_csp_violation(browser, server, route, user, admin_user, pending_user):
    conversation = Conversation.objects.create(owner=user, title="Math and code", model="llama3.2:latest")
    Message.objects.create(conversation=conversation, role="user", content="show me")
    last = Message.objects.create(conversation=conversation, role="assistant", content=REPLY, eval_count=9)
    operation = Operation.objects.create(kind="pull", model="llama3.2", user=admin_user, status="succeeded")
    spare = OllamaServer.objects.create(name="spare", base_url=server.double.url, enabled=False)
    who = ACCESS[route.name][0]
    account = {PUBLIC: None, SIGNED_IN: pending_user, STAFF: admin_user}.get(who, user)
    url = sample_url(
        route,
        conversation=conversation.pk,
        before=last.pk,
        account=pending_user.pk,
        operation=operation.pk,
        server=spare.pk,
    )
    watched = watched_page(browser, server, account)
    response = watched.page.goto(server.url + url)
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    watched.page.wait_for_load_state("networkidle")
    if route.name in ("chat:conversation", "chat:index"):
        markdown_settled(watched.page)
    assert watched.violations() == []
    assert watched.errors == []
    watched.page.context.close()


def test_it_streams_chats_and_swaps_partials_without_a_csp_violation(browser, server, user):
    server.double.configure(reply=REPLY, tokens_per_second=80)
    watched = watched_page(browser, server, user)
    page = watched.page
    page.goto(server.url + "/")
    page.wait_for_selector('.chat-main[data-socket="open"]')
    page.fill("#composer-input", "Show me **code** and $x^2$")
    page.press("#composer-input", "Enter")
    page.wait_for_selector('article.message-assistant[data-status="complete"]')
    page.wait_for_selector("article.message-assistant .katex")
    page.wait_for_selector("article.message-assistant code.hljs")
    page.fill("#conv-search", "code")  # htmx swaps the sidebar
    page.wait_for_selector(".conv-item")
    page.reload()
    markdown_settled(page)
    page.click("[data-open-dialog=settings-dialog]")
    page.wait_for_selector("#settings-dialog[open]")
    page.keyboard.press("Escape")
    assert watched.violations() == []
    assert watched.errors == []
    page.context.close()


def test_it_runs_the_dashboard_without_a_csp_violation(browser, server, admin_user):
    server.double.configure(pull_seconds=0.5)
    watched = watched_page(browser, server, admin_user)
    page = watched.page
    page.goto(server.url + "/models/")
    page.wait_for_selector('#models-dashboard[data-socket="open"]')
    page.fill("#pull-form input[name=model]", "qwen3:0.6b")
    page.click("#pull-form [type=submit]")
    page.wait_for_selector(
        "[data-operation-id][data-status=succeeded], [data-operation-id] .badge-ok", timeout=15_000
    )
    page.goto(server.url + "/models/llama3.2:latest/")
    page.goto(server.url + "/users/")
    assert watched.violations() == []
    assert watched.errors == []
    page.context.close()
