"""The settings page: the effective value of each setting and where it came from, secrets masked."""

from __future__ import annotations

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from models_admin.services.config import settings_effective
from models_admin.views.common import HtmxHttpRequest, arender, staff_required


@staff_required
@require_GET
async def settings_page(request: HtmxHttpRequest) -> HttpResponse:
    return await arender(
        request, "models_admin/settings.html", {"rows": settings_effective(), "tab": "settings"}
    )
