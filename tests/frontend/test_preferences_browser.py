"""Language, theme and the phone layout in Chromium against a real daphne: switched from the
page, remembered on the profile, followed by another browser of the same user."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from chat.models import Conversation
from tests.conftest import browser_login
from webui.models import Profile

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 375, "height": 812}, "is_mobile": True, "has_touch": True}


@pytest.fixture
def new_page(browser, server):
    """Return a function that opens a page in a new browser context, logged in as `user`."""
    contexts = []

    def open_(user, path: str = "/", **options):
        context = browser.new_context(
            **{"viewport": {"width": 1280, "height": 800}, "locale": "en-US", **options}
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        browser_login(page, server, user)
        page.goto(server.url + path)
        return page

    yield open_
    for context in contexts:
        context.close()


def test_it_switches_the_language_from_the_menu_and_another_browser_follows(new_page, user):
    page = new_page(user)
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.locator(".language-menu summary").click()
    with page.expect_navigation():
        page.get_by_role("button", name="简体中文").click()

    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator(".new-chat")).to_have_text("新对话")
    assert Profile.objects.get(user=user).language == "zh-hans"

    elsewhere = new_page(user, locale="en-US")  # another browser that asks for English
    expect(elsewhere.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(elsewhere.get_by_role("button", name="发送")).to_be_visible()

    elsewhere.locator(".language-menu summary").click()
    with elsewhere.expect_navigation():
        elsewhere.get_by_role("button", name="English").click()
    expect(elsewhere.locator("html")).to_have_attribute("lang", "en")
    expect(elsewhere.locator(".new-chat")).to_have_text("New chat")
    assert Profile.objects.get(user=user).language == "en"


def test_it_switches_the_theme_and_another_browser_follows(new_page, user):
    page = new_page(user, color_scheme="light")
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    toggle = page.locator(".topbar [data-theme-toggle]")

    toggle.click()  # system → light
    with page.expect_response("**/preferences/theme/") as saved:
        toggle.click()  # light → dark
    assert saved.value.status == 204

    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    dark = page.evaluate(background)
    assert dark != light
    assert Profile.objects.get(user=user).theme == "dark"

    elsewhere = new_page(user, color_scheme="light")  # a light OS, no choice stored on it yet
    expect(elsewhere.locator("html")).to_have_attribute("data-theme", "dark")
    assert elsewhere.evaluate(background) == dark
    assert elsewhere.locator(".topbar [data-theme-toggle]").get_attribute("aria-label") == (
        "Theme: dark. Switch to same as the system."
    )


def test_it_lays_out_the_chat_for_a_phone(new_page, user):
    conversation = Conversation.objects.create(owner=user, title="Packing list for Lisbon")
    page = new_page(user, **PHONE)
    page.wait_for_selector('.chat-main[data-socket="open"]')

    sidebar = page.locator("#sidebar")
    toggle = page.locator("[data-sidebar-toggle]")
    expect(sidebar).not_to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    composer = page.locator("form.composer").bounding_box()
    assert composer["y"] + composer["height"] <= 812  # reachable without scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    toggle.click()
    expect(sidebar).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    assert sidebar.bounding_box()["width"] < 375  # a drawer over the chat, with the backdrop beside
    page.keyboard.press("Escape")
    expect(sidebar).not_to_be_visible()
    expect(toggle).to_be_focused()

    toggle.click()
    page.get_by_role("link", name="Packing list for Lisbon").click()
    page.wait_for_url(f"**/c/{conversation.pk}/")
    expect(page.locator("#chat-title")).to_have_text("Packing list for Lisbon")
    expect(page.locator("#sidebar")).not_to_be_visible()


def test_it_turns_the_models_table_into_cards_on_a_phone(new_page, admin_user):
    page = new_page(admin_user, "/models/", **PHONE)

    row = page.locator('#model-table tr[data-model="llava:7b"]')
    expect(row).to_be_visible()
    expect(page.locator("#model-table thead")).to_have_css("position", "absolute")  # visually hidden
    assert row.evaluate("element => getComputedStyle(element).display") == "block"
    size = row.locator("td[data-label]").first.evaluate(
        "element => [getComputedStyle(element, '::before').content, element.getBoundingClientRect().width]"
    )
    assert size[0] not in ("none", "normal", '""') and size[1] > 250  # a labelled, full-width line
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
