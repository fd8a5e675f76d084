"""A small world for browser tests of the static front end, without daphne.

Pages are served by Playwright's request interception from one fake origin
(http://webui.test): HTML we render ourselves, `/static/...` from the staticfiles finders (so
the vendored builds are exactly what production serves), and nothing else: any request to
another origin is aborted and recorded, which proves the pages work offline.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string

ROOT = Path(__file__).resolve().parent.parent.parent
ORIGIN = "http://webui.test"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
SCREENSHOTS = ROOT / "screenshots"

# The scripts base.html loads, in its order.
MARKDOWN_SCRIPTS = [
    "vendor/markdown-it/markdown-it.min.js",
    "vendor/dompurify/purify.min.js",
    "vendor/highlight/highlight.min.js",
    "vendor/katex/katex.min.js",
    "js/markdown.js",
]

mimetypes.add_type("font/woff2", ".woff2")
mimetypes.add_type("text/javascript", ".js")


def markdown_harness(body: str = "") -> str:
    """Return a bare page that loads the markdown stack the way base.html does."""
    scripts = "\n".join(f'<script src="/static/{path}" defer></script>' for path in MARKDOWN_SCRIPTS)
    return (
        '<!DOCTYPE html><html lang="en" data-theme="light"><head><meta charset="utf-8">'
        '<link rel="stylesheet" href="/static/vendor/katex/katex.min.css">'
        '<link rel="stylesheet" href="/static/css/app.css">'
        f"{scripts}</head><body><main id=main class=page><div id=out class=md></div>{body}</main>"
        "</body></html>"
    )


@dataclass
class Site:
    """What the fake origin serves, and what else the page tried to fetch."""

    pages: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # sent with every page
    posts: list[tuple[str, str]] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def url(self, path: str = "/") -> str:
        return ORIGIN + path


def _static_file(path: str) -> Path | None:
    found = finders.find(path)
    return Path(found) if found else None


def new_context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(10_000)
    return context


def serve(context) -> Site:
    """Route every request of `context`: the fake origin is served, anything else aborted."""
    site = Site()

    def foreign(route) -> None:
        site.foreign_requests.append(route.request.url)
        route.abort()

    def local(route) -> None:
        path = urlsplit(route.request.url).path
        if route.request.method == "POST":
            site.posts.append((path, route.request.post_data or ""))
            route.fulfill(status=200, body="", content_type="text/html; charset=utf-8")
            return
        if path in site.pages:
            route.fulfill(
                status=200,
                body=site.pages[path],
                content_type="text/html; charset=utf-8",
                headers=site.headers,
            )
            return
        if path.startswith("/static/"):
            file = _static_file(path.removeprefix("/static/"))
            if file is not None:
                content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                route.fulfill(status=200, body=file.read_bytes(), content_type=content_type)
                return
        if path == "/__tests__/axe.min.js":  # served from tests/, never from static/
            route.fulfill(status=200, body=AXE.read_bytes(), content_type="text/javascript")
            return
        if path in ("/healthz/banner", "/favicon.ico"):
            route.fulfill(status=204 if path == "/favicon.ico" else 200, body="", content_type="text/html")
            return
        site.missing.append(path)
        route.fulfill(status=404, body="not found")

    context.route("**/*", foreign)  # registered first, so tried last
    context.route(f"{ORIGIN}/**", local)
    return site


def open_in(context, site: Site, html: str, path: str = "/", *, wait_for: str = "() => window.WebuiMarkdown"):
    """Serve `html` at `path`, open it in a new page of `context` and wait until it is ready."""
    site.pages[path] = html
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    page.goto(site.url(path))
    page.wait_for_function(wait_for)
    return page


@pytest.fixture
def context(browser):
    context = new_context(browser)
    yield context
    context.close()


@pytest.fixture
def site(context) -> Site:
    return serve(context)


@pytest.fixture
def open_page(context, site) -> Callable[..., object]:
    """Return a function that serves `html` at `path` and opens it in a fresh page."""

    def open_(html: str, path: str = "/", *, wait_for: str = "() => window.WebuiMarkdown"):
        return open_in(context, site, html, path, wait_for=wait_for)

    return open_


@pytest.fixture(scope="module")
def _shared_md_page(browser):
    context = new_context(browser)
    site = serve(context)
    page = open_in(context, site, markdown_harness())
    page.site = site  # type: ignore[attr-defined]
    yield page
    context.close()


@pytest.fixture
def md_page(_shared_md_page):
    """Return the module's markdown page (opening a page costs ~1.5 s), reset to an empty #out.

    For rendering tests only: tests that patch globals or leave streams behind use fresh_md_page.
    """
    page = _shared_md_page
    page.evaluate(
        "() => { delete window.__xss; delete window.__copied;"
        " document.getElementById('out').replaceChildren(); }"
    )
    page.errors.clear()
    return page


@pytest.fixture
def fresh_md_page(open_page):
    """Return a new page with the markdown stack loaded and an empty `#out.md` element."""
    return open_page(markdown_harness())


# -- whole pages rendered from templates ---------------------------------------------------------
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True},
}
# "dark" goes through data-theme="system" and a dark OS, so the media-query path is covered too.
THEMES = {"light": ("light", "light"), "dark": ("system", "dark")}

# What a deployment's Content-Security-Policy can be (see docs/frontend.md): no inline script,
# no eval; inline style attributes only, which KaTeX needs to place glyphs.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'"
)


def render_page(template: str, rf, user, path: str = "/") -> str:
    request = rf.get(path)
    request.user = user
    return render_to_string(template, request=request)


@pytest.fixture
def styleguide(rf, user) -> str:
    return render_page("dev/styleguide.html", rf, user)


@pytest.fixture
def chat_sample(rf, user) -> str:
    return render_page("dev/chat_sample.html", rf, user)


def open_themed(
    browser,
    html: str,
    *,
    theme: str,
    viewport: str,
    wait_for: str = "() => document.querySelector('[data-md-done]')",
):
    stored, scheme = THEMES[theme]
    context = browser.new_context(locale="en-US", color_scheme=scheme, **VIEWPORTS[viewport])
    context.set_default_timeout(10_000)
    context.add_init_script(
        f"if (!localStorage.getItem('webui-theme')) localStorage.setItem('webui-theme', {json.dumps(stored)})"
    )
    site = serve(context)
    site.headers["Content-Security-Policy"] = CSP
    context.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || '')));"
    )
    page = open_in(context, site, html, wait_for=wait_for)
    page.evaluate("document.fonts.ready")
    return context, site, page


@pytest.fixture
def themed(browser) -> Iterator[Callable[..., tuple[Site, object]]]:
    """Return a function that opens `html` in a new context of a theme and viewport.

    The page is served with the CSP of docs/frontend.md and records its violations in
    `window.__csp`; contexts are closed at teardown.
    """
    contexts = []

    def open_(html: str, *, theme: str = "light", viewport: str = "desktop", **options):
        context, site, page = open_themed(browser, html, theme=theme, viewport=viewport, **options)
        contexts.append(context)
        return site, page

    yield open_
    for context in contexts:
        context.close()
