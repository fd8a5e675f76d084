"""The models dashboard for admins: list, pull, inspect, create, copy, push, delete, unload, embed.

Every view is async (the gateway is) and staff-only. Pages work without JavaScript: forms
POST and redirect; htmx requests get a named partial of the same template instead.
"""

from __future__ import annotations

import asyncio
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event
from django_htmx.middleware import HtmxDetails

from models_admin import services
from models_admin.forms import (
    CopyForm,
    CreateForm,
    DeleteForm,
    EmbedForm,
    ListQueryForm,
    ModelForm,
    PullForm,
    PushForm,
)
from models_admin.models import Operation
from models_admin.names import model_name_parse
from webui.ollama import OllamaError

DEFAULT_BASE = "llama3.2:latest"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def staff_required(view):
    """Let only signed-in staff through: anonymous users go to log in, others get 403."""

    @wraps(view)
    async def guarded(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (await request.auser()).is_staff:
            raise PermissionDenied
        return await view(request, *args, **kwargs)

    return login_required(guarded)


arender = sync_to_async(render)  # templates may touch the ORM: render off the event loop


def _htmx_target(request: HtmxHttpRequest) -> str | None:
    return request.htmx.target if request.htmx else None


# -- the dashboard -------------------------------------------------------------------------
async def _table_context(query: dict[str, str]) -> dict[str, Any]:
    context: dict[str, Any] = {"query": query, "models": [], "models_error": None}
    try:
        context["models"] = await services.models_installed(
            query=query["q"], sort=query["sort"], descending=query["dir"] == "desc"
        )
    except OllamaError as error:
        context["models_error"] = error.user_message
    context["query_string"] = urlencode({key: value for key, value in query.items() if value})
    context["sort_links"] = {column: _sort_link(query, column) for column in services.SORTS}
    return context


def _sort_link(query: dict[str, str], column: str) -> dict[str, str]:
    current = query["sort"] == column
    if current:
        direction = "asc" if query["dir"] == "desc" else "desc"
    else:
        direction = "asc" if column == "name" else "desc"
    params = {"q": query["q"], "sort": column, "dir": direction}
    return {
        "url": "?" + urlencode({key: value for key, value in params.items() if value}),
        "aria": ("ascending" if query["dir"] == "asc" else "descending") if current else "none",
        "arrow": ("▲" if query["dir"] == "asc" else "▼") if current else "",
    }


async def _loaded_context() -> dict[str, Any]:
    try:
        return {"loaded": await services.models_loaded(), "loaded_error": None}
    except OllamaError as error:
        return {"loaded": [], "loaded_error": error.user_message}


async def _activity_context() -> dict[str, Any]:
    history, audit = await asyncio.gather(services.operations_recent_async(), services.audit_recent_async())
    return {"history": history, "audit": audit}


@staff_required
@require_GET
async def index(request: HtmxHttpRequest) -> HttpResponse:
    query = ListQueryForm(request.GET).query()
    target = _htmx_target(request)
    if target == "model-table":
        return await arender(request, "models_admin/index.html#model-table", await _table_context(query))
    if target == "loaded-models":
        return await arender(request, "models_admin/index.html#loaded-models", await _loaded_context())
    if target == "activity":
        return await arender(request, "models_admin/index.html#activity", await _activity_context())
    return await _dashboard(request, query=query, pull_form=PullForm())


async def _dashboard(
    request: HtmxHttpRequest, *, query: dict[str, str], pull_form: PullForm, status: int = 200
):
    table, loaded, activity, operations = await asyncio.gather(
        _table_context(query), _loaded_context(), _activity_context(), services.operations_current()
    )
    context = {
        **table,
        **loaded,
        **activity,
        "operations": operations,
        "pull_form": pull_form,
        "tab": "installed",
        "js_labels": _js_labels(),
    }
    return await arender(request, "models_admin/index.html", context, status=status)


def _js_labels() -> dict[str, Any]:
    """Return the words models.js needs, translated (it has no catalog of its own)."""
    return {
        "kinds": dict(Operation.Kind.choices),
        "statuses": dict(Operation.Status.choices),
        "cancel": _("Cancel"),
        "dismiss": _("Dismiss"),
        "progress": _("Progress"),
        "left": _("%(time)s left"),
        "hours": _("%(hours)s h %(minutes)s min"),
        "minutes": _("%(minutes)s min %(seconds)s s"),
        "seconds": _("%(seconds)s s"),
        "finished": _("%(kind)s %(model)s: %(status)s"),
        "reconnecting": _("Live progress lost its connection; reconnecting…"),
    }


@staff_required
@require_POST
async def pull(request: HtmxHttpRequest) -> HttpResponse:
    form = PullForm(request.POST)
    if not form.is_valid():
        if request.htmx:  # htmx swaps only 2xx answers
            return await arender(request, "models_admin/index.html#pull-form", {"pull_form": form})
        query = ListQueryForm(request.GET).query()
        return await _dashboard(request, query=query, pull_form=form, status=400)
    user = await request.auser()
    name = form.cleaned_data["model"]
    _snapshot, joined = await services.model_pull(user_id=user.pk, username=user.get_username(), name=name)
    if joined:
        notice = _("%(model)s is already being pulled; you joined that pull.") % {"model": name}
    else:
        notice = _("Pulling %(model)s…") % {"model": name}
    if request.htmx:
        response = await arender(
            request, "models_admin/index.html#pull-form", {"pull_form": PullForm(), "notice": notice}
        )
        return trigger_client_event(response, "activity-changed")
    messages.info(request, notice)
    return redirect(reverse("models_admin:index") + "#operations")


@staff_required
@require_POST
async def cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    user = await request.auser()
    if await services.operation_cancel(user_id=user.pk, operation_id=pk):
        messages.info(request, _("Cancelled."))
    else:
        messages.error(request, _("That operation is not running (any more)."))
    return redirect(reverse("models_admin:index") + "#operations")


@staff_required
@require_http_methods(["GET", "POST"])
async def delete(request: HtmxHttpRequest) -> HttpResponse:
    form = DeleteForm(request.POST if request.method == "POST" else request.GET)
    if not form.is_valid():
        return await _action_result(
            request, error=" ".join(form.errors.get("model", [])) or _("Invalid request.")
        )
    name = form.cleaned_data["model"]
    if request.method == "GET" or not form.cleaned_data["confirm"]:
        # Without JavaScript there is no hx-confirm: ask on a page of its own.
        return await arender(request, "models_admin/delete.html", {"name": name, "tab": "installed"})
    user = await request.auser()
    try:
        await services.model_delete(user_id=user.pk, name=name)
    except OllamaError as error:
        return await _action_result(request, error=error.user_message)
    return await _action_result(request, notice=_("Deleted %(model)s.") % {"model": name}, changed=True)


async def _action_result(
    request: HtmxHttpRequest, *, notice: str = "", error: str = "", changed: bool = False
) -> HttpResponse:
    """Answer a dashboard action: a banner for htmx, else a message and back to the dashboard."""
    if request.htmx:
        response = await arender(
            request, "models_admin/index.html#action-result", {"action_notice": notice, "action_error": error}
        )
        events = ["activity-changed", "models-changed"] if changed else ["activity-changed"]
        for event in events:
            trigger_client_event(response, event)
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect("models_admin:index")


@staff_required
@require_POST
async def unload(request: HtmxHttpRequest) -> HttpResponse:
    form = ModelForm(request.POST)
    if not form.is_valid():
        return await _action_result(request, error=" ".join(form.errors.get("model", [])))
    name = form.cleaned_data["model"]
    user = await request.auser()
    try:
        await services.model_unload(user_id=user.pk, name=name)
    except OllamaError as error:
        return await _action_result(request, error=error.user_message)
    return await _action_result(request, notice=_("Unloaded %(model)s.") % {"model": name}, changed=True)


# -- one model -----------------------------------------------------------------------------
@staff_required
@require_GET
async def detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    try:
        model_name_parse(name)
    except ValidationError as error:
        raise Http404(" ".join(error.messages)) from error
    context: dict[str, Any] = {
        "name": name,
        "tab": "installed",
        "copy_form": CopyForm(initial={"source": name}),
    }
    context["push_form"] = PushForm(initial={"model": name})
    try:
        context["model"] = await services.model_inspect(name=name)
    except OllamaError as error:
        if error.status == 404:
            return await arender(
                request, "models_admin/missing.html", {"name": name, "tab": "installed"}, status=404
            )
        context["error"] = error.user_message
        return await arender(request, "models_admin/detail.html", context, status=502)
    context["known_capabilities"] = services.KNOWN_CAPABILITIES
    return await arender(request, "models_admin/detail.html", context)


def _detail_url(name: str) -> str:
    return reverse("models_admin:detail", kwargs={"name": name})


@staff_required
@require_POST
async def copy(request: HtmxHttpRequest) -> HttpResponse:
    form = CopyForm(request.POST)
    source = request.POST.get("source", "")
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return _back_to(source)
    source, destination = form.cleaned_data["source"], form.cleaned_data["destination"]
    user = await request.auser()
    try:
        await services.model_copy(user_id=user.pk, source=source, destination=destination)
    except OllamaError as error:
        messages.error(request, error.user_message)
        return _back_to(source)
    messages.success(
        request, _("Copied %(source)s to %(destination)s.") % {"source": source, "destination": destination}
    )
    return redirect(_detail_url(services.model_display_name(destination)))


def _back_to(name: str) -> HttpResponse:
    try:
        model_name_parse(name)
    except ValidationError:
        return redirect("models_admin:index")
    return redirect(_detail_url(name))


@staff_required
@require_POST
async def push(request: HtmxHttpRequest) -> HttpResponse:
    form = PushForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("model", []):
            messages.error(request, error)
        return redirect("models_admin:index")
    user = await request.auser()
    name = form.cleaned_data["model"]
    _snapshot, joined = await services.model_push(user_id=user.pk, username=user.get_username(), name=name)
    if joined:
        messages.info(
            request, _("%(model)s is already being pushed; you joined that push.") % {"model": name}
        )
    else:
        messages.info(request, _("Pushing %(model)s…") % {"model": name})
    return redirect(reverse("models_admin:index") + "#operations")


# -- create --------------------------------------------------------------------------------
@staff_required
@require_http_methods(["GET", "POST"])
async def create(request: HtmxHttpRequest) -> HttpResponse:
    bases: list[str] = []
    error = None
    try:
        bases = [model.name for model in await services.models_installed(sort="name", descending=False)]
    except OllamaError as failure:
        error = failure.user_message
    initial = {"base": DEFAULT_BASE if DEFAULT_BASE in bases else (bases[0] if bases else "")}
    form = CreateForm(request.POST or None, bases=bases, initial=initial)
    if request.method == "POST" and form.is_valid():
        user = await request.auser()
        name = form.cleaned_data["name"]
        _snapshot, _joined = await services.model_create(
            user_id=user.pk,
            username=user.get_username(),
            name=name,
            base=form.cleaned_data["base"],
            system=form.cleaned_data["system"],
            parameters=form.parameters(),
        )
        messages.info(request, _("Creating %(model)s…") % {"model": name})
        return redirect(reverse("models_admin:index") + "#operations")
    status = 400 if request.method == "POST" else 200
    return await arender(
        request, "models_admin/create.html", {"form": form, "error": error, "tab": "create"}, status=status
    )


# -- embeddings ----------------------------------------------------------------------------
@staff_required
@require_http_methods(["GET", "POST"])
async def embed(request: HtmxHttpRequest) -> HttpResponse:
    models: list[str] = []
    error = None
    try:
        models = await services.models_with_capability("embedding")
    except OllamaError as failure:
        error = failure.user_message
    form = EmbedForm(request.POST or None, models=models)
    result = None
    if request.method == "POST" and form.is_valid():
        try:
            result = await services.model_embed(
                model=form.cleaned_data["model"], text=form.cleaned_data["text"]
            )
        except OllamaError as failure:
            error = failure.user_message
    context = {"form": form, "result": result, "error": error, "models": models, "tab": "embed"}
    if request.htmx and request.method == "POST":
        return await arender(request, "models_admin/embed.html#embed-panel", context)
    return await arender(request, "models_admin/embed.html", context)
