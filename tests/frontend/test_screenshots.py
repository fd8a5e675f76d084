"""The real pages, served by daphne, in both languages, both themes, on a desktop and a phone.

For each language × theme one test walks the main pages (login, empty chat, a long markdown
answer, the users page, the models dashboard with a pull in progress, a reply mid-stream) in a
desktop and a phone browser context, saves a screenshot of each into the git-ignored
`screenshots/` folder and runs axe-core on it: no serious or critical violation is allowed.
Look at the screenshots after a change to the look (house style: "Look at it").
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from playwright.sync_api import expect

from chat.models import Conversation, Message
from tests.conftest import browser_login, require
from tests.frontend.conftest import AXE, SCREENSHOTS
from webui.models import Profile

pytestmark = pytest.mark.browser

LOCALES = {"en": "en-US", "zh-hans": "zh-CN"}
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 375, "height": 812}, "is_mobile": True, "has_touch": True},
}
PULLING = {"en": "pulling ", "zh-hans": "正在拉取 "}
NOW = {"en": "now", "zh-hans": "现在"}  # Intl.RelativeTimeFormat(lang, {numeric: "auto"}) for 0 s
AXE_URL = "/__tests__/axe.min.js"  # routed to tests/frontend/vendor: same origin, so the CSP allows it

LONG_ANSWER = r"""## Binary search, step by step

Binary search finds an item in a **sorted** list by halving the range each time, so it needs
at most $\lceil \log_2 n \rceil$ comparisons. 二分查找每一步都把范围缩小一半，适合在有序数组中查找。

1. Start with the whole list: `low = 0`, `high = len(items) - 1`.
2. Look at the middle item and compare it with the target.
3. Keep the half that can still hold the target.

```python
def binary_search(items: list[int], target: int) -> int:
    low, high = 0, len(items) - 1
    while low <= high:
        middle = (low + high) // 2
        if items[middle] == target:
            return middle
        if items[middle] < target:
            low = middle + 1
        else:
            high = middle - 1
    return -1
```

The cost over $n$ items satisfies the recurrence

$$T(n) = T\left(\frac{n}{2}\right) + O(1) \implies T(n) = O(\log n)$$

| Items | Linear search | Binary search |
|------:|--------------:|--------------:|
| 1 000 | 1 000 | 10 |
| 1 000 000 | 1 000 000 | 20 |

Try it from a shell:

```bash
python3 -c 'from search import binary_search; print(binary_search([1, 3, 5, 7], 5))'
```

> A sorted list is the price of admission: sorting first costs $O(n \log n)$.
"""


@pytest.fixture
def world(server, admin_user, user, pending_user):
    """Give the admin a few conversations, one of them holding a long markdown answer."""
    for title in ("Trip to Hangzhou", "周报摘要", "SQL index advice"):
        Conversation.objects.create(owner=admin_user, title=title, model="llama3.2:latest")
    long = Conversation.objects.create(
        owner=admin_user, title="Binary search explained", model="llama3.2:latest"
    )
    Message.objects.create(
        conversation=long, role="user", content="Explain binary search, with code and the maths."
    )
    Message.objects.create(
        conversation=long,
        role="assistant",
        content=LONG_ANSWER,
        model="llama3.2:latest",
        eval_count=412,
        eval_duration=5_100_000_000,
    )
    return long


def open_context(browser, server, *, language: str, theme: str, viewport: str):
    context = browser.new_context(locale=LOCALES[language], color_scheme=theme, **VIEWPORTS[viewport])
    context.set_default_timeout(15_000)
    context.route(
        f"{server.url}{AXE_URL}",
        lambda route: route.fulfill(status=200, body=AXE.read_bytes(), content_type="text/javascript"),
    )
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return context, page


def serious_axe_violations(page) -> list[dict]:
    page.add_script_tag(url=AXE_URL)
    return page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => ({id: v.id, impact: v.impact, help: v.help,
                         nodes: v.nodes.slice(0, 5)
                           .map(n => n.target.join(' ') + ' ' + (n.failureSummary || ''))}))"""
    )


def has_chinese_font() -> bool:
    """Tell whether fontconfig knows a Simplified Chinese font (else Chromium draws boxes)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return False
    found = subprocess.run([fc_list, ":lang=zh-cn", "family"], capture_output=True, text=True, check=False)
    return bool(found.stdout.strip())


class Checker:
    """Screenshot each page and collect its axe violations, so one test reports them all."""

    def __init__(self, language: str, theme: str) -> None:
        self.language, self.theme = language, theme
        self.violations: dict[str, list[dict]] = {}
        SCREENSHOTS.mkdir(exist_ok=True)

    def shoot(self, page, name: str, viewport: str):
        page.evaluate("document.fonts.ready")
        shot = SCREENSHOTS / f"{name}-{self.language}-{self.theme}-{viewport}.png"
        page.screenshot(path=str(shot), full_page=True, animations="disabled", caret="initial")
        return shot

    def check(self, page, name: str, viewport: str) -> None:
        html = page.locator("html")
        expect(html).to_have_attribute("lang", self.language)
        assert page.evaluate(
            "matchMedia('(prefers-color-scheme: dark)').matches"
            " && document.documentElement.dataset.theme !== 'light'"
            " || document.documentElement.dataset.theme === 'dark'"
        ) == (self.theme == "dark")
        shot = self.shoot(page, name, viewport)
        found = serious_axe_violations(page)
        if found:
            self.violations[shot.stem] = found
        # Nothing wider than the screen: a page that scrolls sideways is broken on a phone.
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{shot.name} scrolls sideways by {overflow}px"
        assert page.errors == [], f"{shot.name}: {page.errors}"

    def assert_clean(self) -> None:
        assert self.violations == {}, json.dumps(self.violations, indent=1, ensure_ascii=False)


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("language", list(LOCALES))
def test_it_screenshots_the_main_pages_and_finds_no_serious_accessibility_problem(
    browser, server, world, admin_user, language, theme
):
    # The sample conversations hold Chinese text in both languages.
    require(has_chinese_font(), "a Chinese font for Chromium (Debian: fonts-noto-cjk)")
    Profile.objects.filter(user=admin_user).update(language=language, theme=theme)
    checker = Checker(language, theme)
    pages = {}
    contexts = []
    try:
        for viewport in VIEWPORTS:
            context, page = open_context(browser, server, language=language, theme=theme, viewport=viewport)
            contexts.append(context)
            pages[viewport] = page

            page.goto(server.url + "/accounts/login/")
            checker.check(page, "login", viewport)

            browser_login(page, server, admin_user)
            page.goto(server.url + "/")
            page.wait_for_selector('.chat-main[data-socket="open"]')
            checker.check(page, "chat-empty", viewport)

            page.goto(f"{server.url}/c/{world.pk}/")
            page.wait_for_selector('.chat-main[data-socket="open"]')
            page.wait_for_selector("article.message-assistant [data-md-done] .katex-display")
            checker.check(page, "chat-markdown", viewport)
            page.locator("#messages").evaluate("element => element.scrollTo(0, 0)")
            checker.shoot(page, "chat-markdown-top", viewport)

            page.goto(server.url + "/users/")
            checker.check(page, "users", viewport)

        # A pull in progress, seen from both viewports (the phone joins the running one).
        server.double.configure(pull_seconds=60)
        for viewport, page in pages.items():
            page.goto(server.url + "/models/")
            expect(page.locator("#models-dashboard")).to_have_attribute("data-socket", "open")
            if viewport == "desktop":
                page.locator("#pull-form input[name=model]").fill("gemma3:4b")
                page.locator("#pull-form button[type=submit]").click()
            page.wait_for_function(
                "() => { const bar = document.querySelector('article.operation progress[data-role=bar]');"
                " return bar && bar.hasAttribute('value') && bar.value > 0 && bar.value < 100; }"
            )
            checker.check(page, "models-pulling", viewport)
            # Ollama's progress words and the relative times are in the reader's language.
            status_text = page.locator("article.operation [data-role=status-text]").inner_text()
            assert status_text.startswith(PULLING[language]), status_text
            expect(page.locator("#activity time[data-relative]").first).to_have_text(NOW[language])
        pages["phone"].locator("article.operation [data-role=cancel] button").click()
        expect(pages["phone"].locator("article.operation")).to_have_attribute("data-status", "cancelled")

        # A reply mid-stream, seen from both viewports (the phone resumes the running one).
        server.double.configure(tokens_per_second=12, reply_tokens=2000)
        desktop = pages["desktop"]
        desktop.goto(server.url + "/")
        desktop.wait_for_selector('.chat-main[data-socket="open"]')
        desktop.fill("#composer-input", "Write a long story about a lighthouse keeper.")
        desktop.press("#composer-input", "Enter")
        desktop.wait_for_url("**/c/*/")
        streaming = (
            "() => { const m = document.querySelector('article.message-assistant');"
            " return m && m.dataset.status === 'streaming'"
            " && m.querySelector('.message-body').textContent.length > 80 }"
        )
        for viewport, page in pages.items():
            if viewport != "desktop":
                page.goto(desktop.url)
                page.wait_for_selector('.chat-main[data-socket="open"]')
            page.wait_for_function(streaming)
            checker.check(page, "chat-streaming", viewport)
        desktop.click("#stop-button")
        desktop.wait_for_selector('article.message-assistant[data-status="stopped"]')
    finally:
        for context in contexts:
            context.close()
    checker.assert_clean()
