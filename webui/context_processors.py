from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from webui.models import user_is_approved


def webui(request: HttpRequest) -> dict:
    """Expose what every page's frame needs: theme, approval, whether Ollama is simulated."""
    user = request.user
    profile = getattr(user, "profile", None) if user.is_authenticated else None
    return {
        "theme": getattr(profile, "theme", "system"),
        "user_is_approved": user_is_approved(user),
        "ollama_simulated": settings.OLLAMA_SIMULATED,
    }
