"""Request gates: approval of new accounts, per-user language, trusted-header SSO."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation
from django_htmx.http import HttpResponseClientRedirect

from webui.models import user_is_approved

# Paths a signed-in but not yet approved user may still reach.
OPEN_PATH_PREFIXES = ("/accounts/", "/healthz", "/readyz", "/static/", "/i18n/", "/pending/")


class ApprovalRequiredMiddleware:
    """Send signed-in users who are not approved to the waiting page, whatever they ask for.

    htmx requests get an HX-Redirect, so the waiting page replaces the whole page instead
    of landing inside whatever element asked for a partial.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not request.path.startswith(OPEN_PATH_PREFIXES):
            if not user_is_approved(user):
                waiting_page = reverse("pending")
                # HtmxMiddleware runs later, so request.htmx does not exist yet.
                if request.headers.get("HX-Request") == "true":
                    return HttpResponseClientRedirect(waiting_page)
                return redirect(waiting_page)
        return self.get_response(request)


class UserLanguageMiddleware:
    """Apply the language a signed-in user chose; otherwise LocaleMiddleware's choice stands."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated:
            language = getattr(getattr(user, "profile", None), "language", "")
            if language:
                translation.activate(language)
                request.LANGUAGE_CODE = language
        return self.get_response(request)


class TrustedHeaderMiddleware(RemoteUserMiddleware):
    """Single sign-on: trust the user name a proxy puts in the REMOTE_USER_HEADER header.

    Only enable it behind a proxy that sets the header on every request and strips it from
    what clients send; otherwise anybody can claim any name.
    """

    @property
    def header(self) -> str:  # type: ignore[override]
        return settings.REMOTE_USER_HEADER


class TrustedHeaderBackend(RemoteUserBackend):
    """Create SSO users on first sight; they follow the same approval rules as sign-ups."""

    def configure_user(self, request, user, created=True):
        from webui.accounts import account_setup  # accounts imports forms, which import auth

        account_setup(user=user)  # also sets up users created before SSO was turned on
        return user
