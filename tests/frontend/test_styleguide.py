"""The style guide (templates/dev/styleguide.html) and the chat frame sample in Chromium:
screenshots in both themes and on desktop and phone, axe-core, offline, strict CSP."""

from __future__ import annotations

import json

import pytest

from tests.frontend.conftest import SCREENSHOTS, THEMES, VIEWPORTS

pytestmark = pytest.mark.browser


def serious_axe_violations(page) -> list[dict]:
    page.add_script_tag(url="/__tests__/axe.min.js")  # a same-origin URL: the CSP allows it
    return page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => ({id: v.id, impact: v.impact, help: v.help,
                         nodes: v.nodes.slice(0, 5)
                           .map(n => n.target.join(' ') + ' ' + (n.failureSummary || ''))}))"""
    )


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("theme", THEMES)
def test_it_renders_the_style_guide_offline_accessibly_and_under_csp(themed, styleguide, theme, viewport):
    site, page = themed(styleguide, theme=theme, viewport=viewport)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"styleguide-{theme}-{viewport}.png"), full_page=True)

    assert page.evaluate("document.documentElement.dataset.theme") == THEMES[theme][0]
    assert page.evaluate("document.querySelectorAll('[data-md]:not([data-md-done])').length") == 0
    assert page.locator(".katex").count() > 5
    assert page.locator(".code-block code.hljs .hljs-keyword").count() > 3
    assert page.evaluate("document.querySelectorAll('style').length") == 0  # htmx injected none
    assert page.errors == []
    assert page.evaluate("window.__csp") == []
    assert site.foreign_requests == []
    assert site.missing == []
    violations = serious_axe_violations(page)
    assert violations == [], json.dumps(violations, indent=1)


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("theme", THEMES)
def test_it_lays_out_the_chat_frame(themed, chat_sample, theme, viewport):
    _site, page = themed(chat_sample, theme=theme, viewport=viewport)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"chat-{theme}-{viewport}.png"))

    size = page.viewport_size
    composer = page.locator("form.composer").bounding_box()
    assert composer["y"] + composer["height"] <= size["height"]  # reachable without scrolling
    assert page.evaluate("document.scrollingElement.scrollHeight") <= size["height"]
    assert page.locator(".sidebar").is_visible() == (viewport == "desktop")
    assert page.errors == [] and page.evaluate("window.__csp") == []
    violations = serious_axe_violations(page)
    assert violations == [], json.dumps(violations, indent=1)


def test_it_uses_the_same_colours_for_dark_and_system_on_a_dark_os(themed, styleguide):
    _site, system = themed(styleguide, theme="dark")
    colours = "() => ['--bg', '--text', '--accent', '--code-bg', '--hl-keyword'].map(v =>\
        getComputedStyle(document.documentElement).getPropertyValue(v).trim())"
    on_dark_os = system.evaluate(colours)
    system.evaluate("document.documentElement.dataset.theme = 'dark'")
    assert system.evaluate(colours) == on_dark_os
    system.evaluate("document.documentElement.dataset.theme = 'light'")
    assert system.evaluate(colours) != on_dark_os


def test_it_opens_the_phone_sidebar_and_closes_it_again(themed, chat_sample):
    _site, page = themed(chat_sample, viewport="phone")
    toggle = page.locator("[data-sidebar-toggle]")

    toggle.click()
    assert page.evaluate("document.body.classList.contains('sidebar-open')")
    assert toggle.get_attribute("aria-expanded") == "true"
    page.wait_for_function("() => getComputedStyle(document.querySelector('.sidebar')).transform === 'none'")
    page.screenshot(path=str(SCREENSHOTS / "chat-light-phone-sidebar.png"))

    page.mouse.click(360, 400)  # on the backdrop, right of the drawer
    assert not page.evaluate("document.body.classList.contains('sidebar-open')")
    toggle.click()
    page.keyboard.press("Escape")
    assert not page.evaluate("document.body.classList.contains('sidebar-open')")
    assert toggle.get_attribute("aria-expanded") == "false"
