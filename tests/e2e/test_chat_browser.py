"""The chat page in Debian's Chromium: send, progressive text, stop, regenerate, edit, reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat.models import Message
from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
SHOTS = Path(__file__).resolve().parents[2] / "screenshots"
LAST_REPLY = "article.message-assistant >> nth=-1"


def raw_text(page, selector: str) -> str:
    return page.eval_on_selector(selector, "el => el.querySelector('template.raw').content.textContent")


def open_chat(page, server, user):
    browser_login(page, server, user)
    page.goto(server.url + "/")
    page.wait_for_selector('.chat-main[data-socket="open"]')


def send(page, text: str) -> None:
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")


def test_it_sends_a_message_and_shows_the_reply_progressively(page, server, user):
    server.double.configure(tokens_per_second=40, reply_tokens=80)
    open_chat(page, server, user)
    assert page.is_visible("text=What can I help with?")
    send(page, "Tell me about **markdown**")
    page.wait_for_selector("article.message-user")
    page.wait_for_function(
        "() => { const m = document.querySelector('article.message-assistant');"
        " return m && m.dataset.status === 'streaming'"
        " && m.querySelector('.message-body').textContent.length > 20 }"
    )
    assert page.is_disabled("#composer-input") and page.is_visible("#stop-button")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "chat-streaming-en-light-desktop.png"))
    page.wait_for_selector('article.message-assistant[data-status="complete"]', timeout=10_000)
    assert "/c/" in page.url
    reply = Message.objects.get(role="assistant")
    assert raw_text(page, LAST_REPLY) == reply.content
    assert "80 tokens" in page.text_content(f"{LAST_REPLY} >> .message-meta")
    assert page.is_enabled("#composer-input")
    assert page.input_value("#composer-input") == ""


def test_it_stops_a_reply(page, server, user):
    server.double.configure(tokens_per_second=25, reply_tokens=1000)
    open_chat(page, server, user)
    send(page, "Count slowly")
    page.wait_for_function(
        "() => { const m = document.querySelector('article.message-assistant');"
        " return m && m.querySelector('.message-body').textContent.length > 10 }"
    )
    page.click("#stop-button")
    page.wait_for_selector('article.message-assistant[data-status="stopped"]', timeout=5_000)
    assert server.double.wait_for_close("/api/chat", timeout=5)["closed_early"]
    assert page.is_visible("text=Stopped.")
    reply = Message.objects.get(role="assistant")
    assert reply.status == "stopped" and reply.content


def test_it_regenerates_the_last_reply(page, server, user):
    open_chat(page, server, user)
    send(page, "Hello")
    page.wait_for_selector('article.message-assistant[data-status="complete"]')
    first_id = page.get_attribute("article.message-assistant", "data-id")
    page.hover("article.message-assistant")
    page.click("article.message-assistant >> [data-action=regenerate]")
    new_reply = f'article.message-assistant[data-status="complete"]:not([data-id="{first_id}"])'
    page.wait_for_selector(new_reply)
    assert page.locator("article.message-assistant").count() == 1
    assert Message.objects.filter(role="assistant").count() == 1


def test_it_edits_a_message_and_resends(page, server, user):
    open_chat(page, server, user)
    send(page, "first version")
    page.wait_for_selector('article.message-assistant[data-status="complete"]')
    page.hover("article.message-user")
    page.click("article.message-user >> [data-action=edit]")
    page.fill("article.message-user .edit-form textarea", "second version")
    page.press("article.message-user .edit-form textarea", "Enter")
    page.wait_for_function(
        "() => document.querySelector('article.message-user template.raw')"
        ".content.textContent === 'second version'"
    )
    page.wait_for_selector('article.message-assistant[data-status="complete"]')
    assert Message.objects.get(role="user").content == "second version"
    assert Message.objects.filter(role="assistant").count() == 1


def test_it_resumes_a_reply_after_a_reload(page, server, user):
    server.double.configure(tokens_per_second=60, reply_tokens=240)
    open_chat(page, server, user)
    send(page, "A long one")
    page.wait_for_function(
        "() => { const m = document.querySelector('article.message-assistant');"
        " return m && m.querySelector('.message-body').textContent.length > 30 }"
    )
    page.wait_for_url("**/c/*/")
    page.reload()
    page.wait_for_selector('.chat-main[data-socket="open"]')
    page.wait_for_selector('article.message-assistant[data-status="complete"]', timeout=15_000)
    reply = Message.objects.get(role="assistant")
    assert reply.eval_count == 240
    assert raw_text(page, LAST_REPLY) == reply.content


XSS_REPLY = (
    '<script>window.__xss = 1</script>\n\n<img src=x onerror="window.__xss = 2">\n\n'
    "[click](javascript:window.__xss=3) ![img](javascript:window.__xss=4)\n\n"
    '<svg onload="window.__xss = 5"></svg>\n\n'
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)\n"
)


def test_it_renders_hostile_model_output_inert(page, server, user):
    server.double.configure(reply=XSS_REPLY)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_chat(page, server, user)
    send(page, '<img src=x onerror="window.__xss = 6">')
    page.wait_for_selector('article.message-assistant[data-status="complete"]')
    page.reload()  # and once more as server-rendered history
    page.wait_for_selector('article.message-assistant[data-status="complete"]')
    page.click("a:has-text('click')", no_wait_after=True) if page.locator(
        "a:has-text('click')"
    ).count() else None
    assert page.evaluate("window.__xss") is None
    assert not dialogs
    html = page.inner_html("#messages")
    assert "<script" not in html.replace("<template", "") or "window.__xss = 1</script>" not in html
    assert (
        page.locator("#messages [onerror], #messages [onload], #messages a[href^='javascript']").count() == 0
    )
