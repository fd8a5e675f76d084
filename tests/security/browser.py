"""Chromium helpers of the security tests: pages that record CSP violations, dialogs and errors,
and an audit of the DOM for anything that could run script."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.conftest import session_cookie

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sample || ""}`);
});
"""

# Everything in the document that could execute: handlers, script URLs, foreign scripts,
# frames, htmx attributes no template writes (data-hx-*, hx-on*).
AUDIT_DOM = """
() => {
  const bad = [];
  const scriptUrl = /^(javascript|vbscript|data:text|data:application)/;
  for (const element of document.querySelectorAll("*")) {
    for (const attribute of element.attributes) {
      const name = attribute.name.toLowerCase();
      const value = attribute.value.replace(/[\\s\\u0000-\\u001f]/g, "").toLowerCase();
      if (name.startsWith("on")) bad.push(`${element.tagName} ${name}`);
      if (name.startsWith("hx-on") || name.startsWith("data-hx-")) bad.push(`${element.tagName} ${name}`);
      if (["href", "src", "action", "formaction", "xlink:href", "data", "srcdoc"].includes(name)
          && scriptUrl.test(value)) bad.push(`${element.tagName} ${name}=${value.slice(0, 60)}`);
    }
    if (element.tagName === "SCRIPT") {
      const own = element.src && new URL(element.src).origin === location.origin
        && new URL(element.src).pathname.startsWith("/static/");
      if (!own && element.type !== "application/json") bad.push(`script ${element.outerHTML.slice(0, 80)}`);
    }
    if (["IFRAME", "FRAME", "OBJECT", "EMBED", "BASE", "META"].includes(element.tagName)
        && element.closest("body")) bad.push(element.tagName);
  }
  return bad;
}
"""


@dataclass
class Watched:
    """A page with what it reported: CSP violations, dialogs, uncaught errors."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        return self.page.evaluate("window.__violations || []")

    def audit(self) -> list[str]:
        return self.page.evaluate(AUDIT_DOM)

    def executed(self) -> Any:
        return self.page.evaluate("window.__xss === undefined ? null : window.__xss")

    def assert_inert(self) -> None:
        """Nothing ran, nothing that could run is in the DOM, the page raised nothing."""
        assert self.executed() is None, "a payload executed"
        assert self.dialogs == [], self.dialogs
        assert self.audit() == []
        assert self.errors == [], self.errors


def watched_page(browser, server, user, *, bypass_csp: bool = False) -> Watched:
    """Return a page logged in as `user` (None: anonymous) that records what it sees.

    `bypass_csp` turns the Content-Security-Policy off, to prove that escaping alone keeps
    payloads inert (the policy is the second line of defence, not the first).
    """
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="en-US", bypass_csp=bypass_csp
    )
    context.add_init_script(RECORD_VIOLATIONS)
    if user is not None:
        context.add_cookies(
            [{"name": "sessionid", "value": session_cookie(user), "url": server.url, "httpOnly": True}]
        )
    page = context.new_page()
    page.set_default_timeout(15_000)
    watched = Watched(page)
    page.on("dialog", lambda dialog: (watched.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    return watched


def markdown_settled(page) -> None:
    """Wait until every markdown element is rendered (chat.js and markdown.js have run)."""
    page.wait_for_function(
        "() => window.WebuiMarkdown && !document.querySelector('[data-md]:not([data-md-done])')"
    )
