"""In a real browser: a new install's first visitor signs up and lands on chat as administrator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.webui.helpers import NEW_PASSWORD

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    """Let the ORM run while Playwright's sync API keeps an event loop in this thread."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


# `server` before `page`: the test database must exist before Playwright starts its loop.
def test_it_signs_up_the_first_user_and_lands_on_chat(server, page):
    SCREENSHOTS.mkdir(exist_ok=True)
    assert not get_user_model().objects.exists()

    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.screenshot(path=SCREENSHOTS / "webui-login.png", full_page=True)

    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password confirmation").fill(NEW_PASSWORD)
    page.screenshot(path=SCREENSHOTS / "webui-signup.png", full_page=True)
    page.get_by_role("button", name="Create account").click()

    expect(page).to_have_url(server.url + "/")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.locator(".topbar .brand")).to_have_text("Ollama Web UI")
    page.screenshot(path=SCREENSHOTS / "webui-first-user-chat.png", full_page=True)
    assert get_user_model().objects.get(username="root").is_superuser

    page.goto(server.url + "/users/")
    expect(page.get_by_role("row", name=re.compile("root"))).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "webui-users.png", full_page=True)

    # A second visitor signs up and waits; the administrator approves them in place (htmx).
    newcomer = page.context.browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    try:
        visitor = newcomer.new_page()
        visitor.goto(server.url + "/accounts/signup/")
        visitor.get_by_label("Username").fill("bob")
        visitor.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
        visitor.get_by_label("Password confirmation").fill(NEW_PASSWORD)
        visitor.get_by_role("button", name="Create account").click()
        expect(visitor).to_have_url(server.url + "/pending/")
        expect(visitor.get_by_role("heading", name="Waiting for approval")).to_be_visible()
        visitor.screenshot(path=SCREENSHOTS / "webui-pending.png", full_page=True)

        page.reload()
        expect(page.locator("#pending-count")).to_have_text(re.compile("1 pending"))
        bob_row = page.get_by_role("row", name=re.compile("bob"))
        bob_row.get_by_role("button", name="Approve").click()
        expect(bob_row.get_by_text("Approved")).to_be_visible()
        expect(page.locator("#pending-count")).to_be_hidden()
        page.screenshot(path=SCREENSHOTS / "webui-users-approved.png", full_page=True)

        visitor.get_by_role("link", name="Check again").click()
        expect(visitor).to_have_url(server.url + "/")
    finally:
        newcomer.close()
