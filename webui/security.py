"""Response headers Django 5.2 does not set itself, and a guard against text no database takes.

- `ContentSecurityPolicyMiddleware` sends a Content-Security-Policy that allows scripts only
  from this site (no inline script, no eval), nothing framed, no plugins, and websockets only
  to this host. Styles allow 'unsafe-inline' because KaTeX positions glyphs with style
  attributes and htmx sets inline styles during swaps; script is the part that matters.
- `NullCharacterMiddleware` answers 400 to a query string or form carrying a NUL character:
  PostgreSQL cannot store one, so without it any text field would turn it into a 500.
- `json_has_lone_surrogates` spots websocket frames whose JSON escapes make a string that
  neither a database nor a websocket can encode (the consumers refuse them).

docs/security.md explains the policy and how to deploy behind HTTPS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.translation import gettext as _

CSP_HEADER = "Content-Security-Policy"
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def content_security_policy(request: HttpRequest) -> str:
    """Return the policy for a response to `request`; websockets may reach this host only."""
    try:
        host = request.get_host()
    except DisallowedHost:
        host = ""
    sockets = f"{'wss' if request.is_secure() else 'ws'}://{host}" if host else ""
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        # KaTeX lays out math with style attributes; htmx animates swaps with inline styles.
        "style-src": "'self' 'unsafe-inline'",
        # Markdown shows small inline data: images; remote images are links, never fetched.
        "img-src": "'self' data:",
        "font-src": "'self'",
        "connect-src": f"'self' {sockets}".strip(),
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class ContentSecurityPolicyMiddleware:
    """Add Content-Security-Policy and Permissions-Policy to every response that lacks them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if CSP_HEADER not in response:
            response[CSP_HEADER] = content_security_policy(request)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def json_has_lone_surrogates(text: str, value: Any) -> bool:
    """Return True when JSON `text`, parsed into `value`, holds a lone UTF-16 surrogate.

    Valid UTF-8 cannot carry one, but a JSON escape (`"\\ud800"`) can; such a string cannot
    be encoded for a database or a websocket. Only frames with a surrogate escape are walked.
    """
    if not _SURROGATE_ESCAPE.search(text):
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return True
    return False


_NUL = re.compile(r"\x00|%00", re.IGNORECASE)


class NullCharacterMiddleware:
    """Refuse, with a readable 400, requests whose query string or form fields hold NUL."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _NUL.search(request.META.get("QUERY_STRING", "")) or self._form_has_nul(request):
            return HttpResponseBadRequest(
                _("The request contains a NUL character, which no text field accepts."),
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)

    @staticmethod
    def _form_has_nul(request: HttpRequest) -> bool:
        if request.method != "POST":
            return False
        content_type = request.META.get("CONTENT_TYPE", "")
        if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            return False
        return any(
            "\x00" in key or "\x00" in value for key, values in request.POST.lists() for value in values
        )
