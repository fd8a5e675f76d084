"""static/js/app.js and the page frame (base.html, topbar) on the style guide page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_it_cycles_the_theme_and_remembers_it_across_reloads(themed, styleguide):
    _site, page = themed(styleguide, theme="dark")  # "system" on a dark OS
    toggle = page.locator(".topbar [data-theme-toggle]")
    assert toggle.get_attribute("aria-label") == "Theme: same as the system. Switch to light."

    seen = []
    for _ in range(3):
        toggle.click()
        seen.append(
            page.evaluate("[document.documentElement.dataset.theme, localStorage.getItem('webui-theme')]")
        )
    assert seen == [["light", "light"], ["dark", "dark"], ["system", "system"]]

    toggle.click()  # light
    background_light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.reload()
    page.wait_for_function("() => window.WebuiMarkdown")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == background_light
    assert toggle.get_attribute("aria-label") == "Theme: light. Switch to dark."


def test_it_shows_toasts_as_text_and_dismisses_them(themed, styleguide):
    _site, page = themed(styleguide)

    page.evaluate("webuiToast('<b>Saved</b>', 'error', {timeout: 0})")

    toast = page.locator("#toasts .toast.toast-error")
    assert toast.get_attribute("role") == "alert"
    assert toast.locator(".toast-text").inner_text() == "<b>Saved</b>"
    toast.locator("button[aria-label=Dismiss]").click()
    toast.wait_for(state="detached")

    page.mouse.move(5, 5)  # a toast under the pointer waits for it to leave
    page.evaluate("webuiToast('Copied', 'ok', {timeout: 50})")
    page.locator("#toasts .toast-ok[role=status]").wait_for(state="detached")


def test_it_asks_in_a_dialog_before_a_data_confirm_button_acts(themed, styleguide):
    _site, page = themed(styleguide)
    page.evaluate(
        "window.__clicks = 0; document.addEventListener('click', e => {"
        " if (e.target.closest('#sg-buttons [data-confirm]')) window.__clicks++; })"
    )
    button = page.locator("#sg-buttons [data-confirm]")
    dialog = page.locator("dialog#webui-confirm")

    button.click()
    assert dialog.is_visible()
    assert (
        dialog.locator("[data-confirm-message]").inner_text()
        == "Delete the model llama3.2:3b? This frees 2.0 GB."
    )
    ok = dialog.locator("button[value=ok]")
    assert ok.inner_text() == "Delete"
    assert "btn-danger" in ok.get_attribute("class")
    assert page.evaluate("document.activeElement.value") == "cancel"  # the safe choice has focus
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert page.evaluate("window.__clicks") == 0

    button.click()
    ok.click()
    page.wait_for_function("() => window.__clicks === 1")  # the dialog's close event is a task away
    assert page.evaluate("document.activeElement.textContent") == "Delete with confirm"


def test_it_confirms_forms_and_htmx_requests_with_the_same_dialog(themed, styleguide):
    site, page = themed(styleguide)
    page.evaluate(
        """() => {
          document.getElementById('main').insertAdjacentHTML('beforeend',
            '<form id=f method=post action="/form-target" data-confirm="Really submit?">' +
            '<button id=f-submit class="btn btn-danger">Send</button></form>' +
            '<button id=h hx-post="/htmx-target" hx-confirm="Really send with htmx?" hx-swap="none">' +
            'htmx</button>' +
            '<form id=both method=post action="/both" hx-post="/both" hx-swap="none"' +
            ' data-confirm="Delete it?" hx-confirm="Delete it?">' +
            '<button id=both-submit>Delete</button></form>');
          htmx.process(document.getElementById('h'));
          htmx.process(document.getElementById('both'));
        }"""
    )
    dialog = page.locator("dialog#webui-confirm")

    page.locator("#h").click()
    assert dialog.locator("[data-confirm-message]").inner_text() == "Really send with htmx?"
    dialog.locator("button[value=cancel]").click()
    page.locator("#h").click()
    with page.expect_request("**/htmx-target"):
        dialog.locator("button[value=ok]").click()

    page.locator("#both-submit").click()
    assert dialog.locator("[data-confirm-message]").inner_text() == "Delete it?"
    with page.expect_request("**/both"):
        dialog.locator("button[value=ok]").click()
    assert not dialog.is_visible()  # asked once, not again for hx-confirm

    page.locator("#f-submit").click()
    assert dialog.locator("[data-confirm-message]").inner_text() == "Really submit?"
    with page.expect_navigation():
        dialog.locator("button[value=ok]").click()
    assert [path for path, _body in site.posts] == ["/htmx-target", "/both", "/form-target"]


def test_it_runs_registered_shortcuts_and_lists_them_on_question_mark(themed, styleguide):
    _site, page = themed(styleguide)
    page.evaluate(
        """() => { window.__searched = 0;
          webuiShortcuts.register({key: 'k', ctrl: true, description: 'Search conversations',
                                   handler: () => window.__searched++});
          webuiShortcuts.register({key: 'n', description: 'New chat',
                                   handler: () => window.__searched += 10}); }"""
    )

    page.keyboard.press("Control+k")
    page.keyboard.press("Meta+k")
    assert page.evaluate("window.__searched") == 2

    page.locator("#sg-username").fill("")
    page.keyboard.press("n")  # typing, not a shortcut
    page.keyboard.press("Control+k")  # modified shortcuts still work in fields
    assert page.evaluate("window.__searched") == 3
    assert page.locator("#sg-username").input_value() == "n"

    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("?")
    help_dialog = page.locator("dialog#webui-shortcuts")
    assert help_dialog.is_visible()
    rows = help_dialog.locator(".shortcut-row")
    assert rows.locator("dd").all_inner_texts() == [
        "Show keyboard shortcuts",
        "Search conversations",
        "New chat",
    ]
    assert rows.nth(1).locator("kbd").all_inner_texts() == ["Ctrl", "K"]
    page.screenshot(path="screenshots/shortcuts-help.png")
    page.keyboard.press("Escape")
    assert not help_dialog.is_visible()


def test_it_offers_every_language_through_django_set_language(themed, styleguide):
    site, page = themed(styleguide)
    menu = page.locator(".topbar details.language-menu")
    form = menu.locator("form")
    assert form.get_attribute("action") == "/i18n/setlang/"
    assert form.locator("input[name=next]").get_attribute("value") == "/"
    assert form.locator("input[name=csrfmiddlewaretoken]").count() == 1

    menu.locator("summary").click()
    choices = form.locator("button[name=language]")
    assert choices.evaluate_all("bs => bs.map(b => [b.value, b.textContent.trim()])") == [
        ["en", "English"],
        ["zh-hans", "简体中文"],
    ]
    assert choices.nth(0).get_attribute("aria-current") == "true"
    page.screenshot(path="screenshots/language-menu.png")
    page.keyboard.press("Escape")
    assert menu.get_attribute("open") is None

    menu.locator("summary").click()
    with page.expect_navigation():
        choices.nth(1).click()
    assert site.posts[-1][0] == "/i18n/setlang/"
    assert "language=zh-hans" in site.posts[-1][1]
