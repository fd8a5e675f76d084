"""Per-user preferences that follow the user across browsers: language and theme."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from webui.models import Profile

LANGUAGE_CODES = {code for code, _name in settings.LANGUAGES}


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """Switch the language (Django's set_language) and remember it on the user's profile."""
    response = set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated and language in LANGUAGE_CODES:
        Profile.objects.filter(user=request.user).update(language=language)
    return response


@require_POST
def theme_set(request: HttpRequest) -> HttpResponse:
    """Remember the theme (system, light or dark) on the user's profile."""
    theme = request.POST.get("theme", "")
    if request.user.is_authenticated and theme in Profile.Theme.values:
        Profile.objects.filter(user=request.user).update(theme=theme)
        return HttpResponse(status=204)
    return HttpResponse(status=400)
