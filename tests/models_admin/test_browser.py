"""The models dashboard in Chromium: live pull progress, delete with confirmation, create."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from models_admin.models import AuditEntry, Operation
from tests.conftest import browser_login

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    """Let the ORM run while Playwright's sync API keeps an event loop in this thread."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def dashboard(server, admin_user, page):
    SCREENSHOTS.mkdir(exist_ok=True)
    browser_login(page, server, admin_user)
    page.goto(server.url + "/models/")
    expect(page.locator("#models-dashboard")).to_have_attribute("data-socket", "open")
    return page


def test_it_pulls_a_model_with_a_visible_progress_bar(server, dashboard):
    page = dashboard
    server.double.configure(pull_seconds=2.0)
    page.screenshot(path=SCREENSHOTS / "models-dashboard.png", full_page=True)

    page.get_by_label("Model to pull").fill("llama3.2:1b")
    page.get_by_role("button", name="Pull", exact=True).click()

    row = page.locator("article.operation")
    expect(row).to_be_visible()
    expect(row.locator("[data-role=title]")).to_have_text("Pull · llama3.2:1b")
    expect(row.locator("[data-role=summary]")).to_contain_text("%")
    bar = row.locator("progress[data-role=bar]")
    expect(bar).to_be_visible()
    page.wait_for_function(
        "() => { const bar = document.querySelector('article.operation progress[data-role=bar]');"
        " return bar && bar.hasAttribute('value') && bar.value > 0 && bar.value < 100; }"
    )
    expect(row.locator("div.layer")).to_have_count(0)  # one layer so far: the bar above says it all
    row.screenshot(path=SCREENSHOTS / "models-pull-progress.png")
    page.screenshot(path=SCREENSHOTS / "models-pull-mid.png", full_page=True)

    expect(row.locator("[data-role=status]")).to_have_text("Succeeded", timeout=15_000)
    expect(page.locator('#model-table tr[data-model="llama3.2:1b"]')).to_be_visible()
    expect(page.locator(".toast")).to_contain_text("llama3.2:1b")
    expect(page.locator("#activity")).to_contain_text("llama3.2:1b")
    assert Operation.objects.get().status == "succeeded"


def test_it_shows_a_failed_pull_plainly(server, dashboard):
    page = dashboard

    page.get_by_label("Model to pull").fill("no-such-model")
    page.get_by_role("button", name="Pull", exact=True).click()

    error = page.locator("article.operation [data-role=error]")
    expect(error).to_contain_text("pull model manifest: file does not exist")
    page.screenshot(path=SCREENSHOTS / "models-pull-failed.png", full_page=True)


def test_it_refuses_an_invalid_name_in_the_form(server, dashboard):
    page = dashboard

    page.get_by_label("Model to pull").fill("../../x")
    page.get_by_role("button", name="Pull", exact=True).click()

    expect(page.locator("#pull-form .field-error")).to_contain_text("is not a valid")
    assert not Operation.objects.exists()


def test_it_deletes_a_model_after_a_confirmation_naming_it(server, dashboard):
    page = dashboard
    row = page.locator('#model-table tr[data-model="llava:7b"]')

    row.get_by_role("button", name="Delete llava:7b").click()

    dialog = page.locator("#webui-confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete llava:7b from the Ollama server?")
    page.screenshot(path=SCREENSHOTS / "models-delete-confirm.png", full_page=True)
    dialog.get_by_role("button", name="Confirm").click()

    expect(page.locator("#action-result")).to_contain_text("Deleted llava:7b.")
    expect(row).to_have_count(0)
    assert "llava:7b" not in server.double.models
    assert AuditEntry.objects.get().action == "delete"


def test_it_keeps_the_model_when_the_confirmation_is_cancelled(server, dashboard):
    page = dashboard

    page.locator('#model-table tr[data-model="llava:7b"]').get_by_role(
        "button", name="Delete llava:7b"
    ).click()
    page.locator("#webui-confirm").get_by_role("button", name="Cancel").click()

    expect(page.locator('#model-table tr[data-model="llava:7b"]')).to_be_visible()
    assert "llava:7b" in server.double.models


def test_it_filters_and_sorts_the_table(server, dashboard):
    page = dashboard

    page.get_by_label("Filter models").fill("qwen")

    expect(page.locator("#model-table tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=qwen"))
    page.get_by_role("link", name=re.compile("^Size")).click()
    expect(page).to_have_url(re.compile(r"sort=size"))
    expect(page.locator("#model-table tbody tr")).to_have_count(1)


def test_it_creates_a_custom_model_with_progress(server, admin_user, page):
    SCREENSHOTS.mkdir(exist_ok=True)
    browser_login(page, server, admin_user)
    page.goto(server.url + "/models/create/")

    page.get_by_label("New model name").fill("example")
    page.get_by_label("Base model").select_option("llama3.2:latest")
    page.get_by_label("System prompt").fill("You are Mario from Super Mario Bros.")
    page.get_by_label("Temperature").fill("0.7")
    page.screenshot(path=SCREENSHOTS / "models-create.png", full_page=True)
    page.get_by_role("button", name="Create", exact=True).click()

    expect(page).to_have_url(server.url + "/models/#operations")
    expect(page.locator(".flash")).to_contain_text("Creating example")
    expect(page.locator('#model-table tr[data-model="example:latest"]')).to_be_visible(timeout=15_000)
    assert server.double.models["example:latest"]["system"] == "You are Mario from Super Mario Bros."
    assert server.double.models["example:latest"]["parameters"]["temperature"] == 0.7

    page.goto(server.url + "/models/example:latest/")
    expect(page.locator("pre[data-field=system]")).to_have_text("You are Mario from Super Mario Bros.")
    page.screenshot(path=SCREENSHOTS / "models-detail.png", full_page=True)


def test_it_embeds_a_text(server, admin_user, page):
    SCREENSHOTS.mkdir(exist_ok=True)
    browser_login(page, server, admin_user)
    page.goto(server.url + "/models/embed/")

    page.get_by_label("Text").fill("The sky is blue.")
    page.get_by_role("button", name="Embed").click()

    expect(page.locator("[data-field=dimensions]")).to_have_text("768")
    page.screenshot(path=SCREENSHOTS / "models-embed.png", full_page=True)


def test_it_looks_right_in_the_dark_on_a_phone(server, admin_user, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark", locale="en-US")
    try:
        page = context.new_page()
        browser_login(page, server, admin_user)
        page.goto(server.url + "/models/")
        expect(page.locator("#model-table")).to_be_visible()
        page.screenshot(path=SCREENSHOTS / "models-dashboard-phone-dark.png", full_page=True)
    finally:
        context.close()
