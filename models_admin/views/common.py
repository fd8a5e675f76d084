"""What every view of the models area shares: the staff check and rendering off the event loop."""

from __future__ import annotations

from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render

from webui.http import HtmxHttpRequest

__all__ = ["HtmxHttpRequest", "arender", "htmx_target", "staff_required"]


def staff_required(view):
    """Let only signed-in staff through: anonymous users go to log in, others get 403."""

    @wraps(view)
    async def guarded(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (await request.auser()).is_staff:
            raise PermissionDenied
        return await view(request, *args, **kwargs)

    return login_required(guarded)


arender = sync_to_async(render)  # templates may touch the ORM: render off the event loop


def htmx_target(request: HtmxHttpRequest) -> str | None:
    return request.htmx.target if request.htmx else None
