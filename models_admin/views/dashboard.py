"""The models dashboard for admins: list, pull, inspect, create, copy, push, delete, unload, embed.

Every view is async (the gateway is) and staff-only. Pages work without JavaScript: forms
POST and redirect; htmx requests get a named partial of the same template instead.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

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
from models_admin.views.common import HtmxHttpRequest, arender, staff_required
from models_admin.views.common import htmx_target as _htmx_target
from webui import fleet
from webui.ollama import OllamaError

DEFAULT_BASE = "llama3.2:latest"


# -- the dashboard -------------------------------------------------------------------------
def _table_context(query: dict[str, str], merged: services.FleetModels) -> dict[str, Any]:
    error = merged.installed_error
    return {
        "query": query,
        "models": merged.installed if error is None else [],
        "models_error": error.user_message if error is not None else None,
        "several": merged.several,
        "query_string": urlencode({key: value for key, value in query.items() if value}),
        "sort_links": {column: _sort_link(query, column) for column in services.SORTS},
    }


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


def _loaded_context(merged: services.FleetModels) -> dict[str, Any]:
    error = merged.loaded_error
    return {
        "loaded": merged.loaded if error is None else [],
        "loaded_error": error.user_message if error is not None else None,
        "several": merged.several,
    }


def _servers_context(merged: services.FleetModels) -> dict[str, Any]:
    """Return each server's health, version, models, loaded models and chats in flight."""
    return {"states": merged.states, "several": merged.several}


async def _activity_context() -> dict[str, Any]:
    history, audit = await asyncio.gather(services.operations_recent_async(), services.audit_recent_async())
    return {"history": history, "audit": audit, "several": len(await fleet.servers()) > 1}


async def _server_names() -> list[str]:
    return [server.name for server in await fleet.servers()]


@staff_required
@require_GET
async def index(request: HtmxHttpRequest) -> HttpResponse:
    query = ListQueryForm(request.GET).query()
    target = _htmx_target(request)
    if target in ("model-table", "loaded-models", "servers-status"):
        merged = await services.models_fleet(
            query=query["q"], sort=query["sort"], descending=query["dir"] == "desc"
        )
        if target == "model-table":
            return await arender(
                request, "models_admin/index.html#model-table", _table_context(query, merged)
            )
        if target == "loaded-models":
            return await arender(request, "models_admin/index.html#loaded-models", _loaded_context(merged))
        return await arender(request, "models_admin/index.html#servers-status", _servers_context(merged))
    if target == "activity":
        return await arender(request, "models_admin/index.html#activity", await _activity_context())
    return await _dashboard(request, query=query, pull_form=PullForm(servers=await _server_names()))


async def _dashboard(
    request: HtmxHttpRequest, *, query: dict[str, str], pull_form: PullForm, status: int = 200
):
    merged, activity, operations = await asyncio.gather(
        services.models_fleet(query=query["q"], sort=query["sort"], descending=query["dir"] == "desc"),
        _activity_context(),
        services.operations_current(),
    )
    context = {
        **_table_context(query, merged),
        **_loaded_context(merged),
        **_servers_context(merged),
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
    names = await _server_names()
    form = PullForm(request.POST, servers=names)
    if not form.is_valid():
        if request.htmx:  # htmx swaps only 2xx answers
            return await arender(request, "models_admin/index.html#pull-form", {"pull_form": form})
        query = ListQueryForm(request.GET).query()
        return await _dashboard(request, query=query, pull_form=form, status=400)
    user = await request.auser()
    name = form.cleaned_data["model"]
    notices = []
    for server in await fleet.targets(form.cleaned_data.get("server") or fleet.ALL):
        _snapshot, joined = await services.model_pull(
            user_id=user.pk, username=user.get_username(), name=name, server=server
        )
        values = {"model": name, "server": server.name}
        if joined and len(names) > 1:
            notices.append(
                _("%(model)s is already being pulled on %(server)s; you joined that pull.") % values
            )
        elif joined:
            notices.append(_("%(model)s is already being pulled; you joined that pull.") % values)
        elif len(names) > 1:
            notices.append(_("Pulling %(model)s on %(server)s…") % values)
        else:
            notices.append(_("Pulling %(model)s…") % values)
    notice = " ".join(notices)
    if request.htmx:
        response = await arender(
            request,
            "models_admin/index.html#pull-form",
            {"pull_form": PullForm(servers=names), "notice": notice},
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
    name, server = form.cleaned_data["model"], form.cleaned_data["server"]
    if request.method == "GET" or not form.cleaned_data["confirm"]:
        # Without JavaScript there is no hx-confirm: ask on a page of its own.
        having = [target.name for target in await fleet.targets(fleet.ALL, having=name)]
        context = {"name": name, "tab": "installed", "servers": having, "chosen": server}
        context["several"] = len(await fleet.servers()) > 1
        return await arender(request, "models_admin/delete.html", context)
    user = await request.auser()
    try:
        outcomes = await services.model_delete(user_id=user.pk, name=name, server=server)
    except OllamaError as error:
        return await _action_result(request, error=error.user_message)
    return await _outcomes_result(
        request,
        outcomes,
        one=_("Deleted %(model)s.") % {"model": name},
        several=_("Deleted %(model)s from %(servers)s."),
        model=name,
    )


async def _outcomes_result(
    request: HtmxHttpRequest, outcomes: list[services.ServerOutcome], *, one: str, several: str, model: str
) -> HttpResponse:
    """Answer a delete or unload that ran on one or several servers."""
    done = [outcome.server for outcome in outcomes if outcome.error is None]
    failed = [outcome.error.user_message for outcome in outcomes if outcome.error is not None]
    if len(outcomes) == 1 or not done:
        notice = one if done else ""
    else:
        notice = several % {"model": model, "servers": ", ".join(done)}
    return await _action_result(request, notice=notice, error=" ".join(failed), changed=bool(done))


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
    if notice:
        messages.success(request, notice)
    if error:
        messages.error(request, error)
    return redirect("models_admin:index")


@staff_required
@require_POST
async def unload(request: HtmxHttpRequest) -> HttpResponse:
    form = ModelForm(request.POST)
    if not form.is_valid():
        return await _action_result(request, error=" ".join(form.errors.get("model", [])))
    name, server = form.cleaned_data["model"], form.cleaned_data["server"]
    user = await request.auser()
    try:
        outcomes = await services.model_unload(user_id=user.pk, name=name, server=server)
    except OllamaError as error:
        return await _action_result(request, error=error.user_message)
    return await _outcomes_result(
        request,
        outcomes,
        one=_("Unloaded %(model)s.") % {"model": name},
        several=_("Unloaded %(model)s on %(servers)s."),
        model=name,
    )


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
    if len(await fleet.servers()) > 1:
        context["servers_having"] = [server.name for server in await fleet.targets(fleet.ALL, having=name)]
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
