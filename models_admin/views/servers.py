"""The fleet's servers page: list with status, add, edit, enable/disable, delete, test connection."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from models_admin.forms import ServerForm
from models_admin.models import OllamaServer
from models_admin.services import servers as service
from models_admin.views.common import HtmxHttpRequest, arender, staff_required
from webui import fleet
from webui.ollama import Health


async def _server_or_404(pk: int) -> OllamaServer:
    server = await OllamaServer.objects.filter(pk=pk).afirst()
    if server is None:
        raise Http404("no such server")
    return server


def _test_result(name: str, health: Health) -> tuple[str, str]:
    """Return (notice, error) saying what a connection test found."""
    if health.reachable:
        values = {"server": name, "version": health.version or "?", "ms": f"{health.latency_ms:.0f}"}
        return _("%(server)s answers: Ollama %(version)s in %(ms)s ms.") % values, ""
    return "", _("%(server)s does not answer: %(error)s") % {"server": name, "error": health.error}


@staff_required
@require_GET
async def servers(request: HtmxHttpRequest) -> HttpResponse:
    """List every server of the fleet with its health, version, models and chats in flight."""
    rows = await service.servers_listing()
    context = {"rows": rows, "tab": "servers", "several": len([row for row in rows if row.state]) > 1}
    if request.htmx and request.htmx.target == "server-list":
        return await arender(request, "models_admin/servers.html#server-list", context)
    return await arender(request, "models_admin/servers.html", context)


async def _form_page(
    request: HtmxHttpRequest, form: ServerForm, *, server: OllamaServer | None, status: int = 200
):
    context = {"form": form, "server": server, "tab": "servers"}
    return await arender(request, "models_admin/server_form.html", context, status=status)


async def _save_or_test(request: HtmxHttpRequest, server: OllamaServer | None) -> HttpResponse:
    """Validate the form; "Test connection" reports on the address typed, "Save" saves it."""
    form = ServerForm(request.POST, instance=server or OllamaServer())
    valid = await _is_valid(form)
    if not valid:
        return await _form_page(request, form, server=server, status=400)
    data = form.cleaned_data
    if "test" in request.POST:
        health = await service.server_test(url=data["base_url"], headers=form.headers())
        notice, error = _test_result(data["name"], health)
        context = {
            "form": form,
            "server": server,
            "tab": "servers",
            "test_notice": notice,
            "test_error": error,
        }
        return await arender(request, "models_admin/server_form.html", context)
    user = await request.auser()
    if server is None:
        saved = await service.server_create(
            user_id=user.pk,
            name=data["name"],
            base_url=data["base_url"],
            headers=form.headers(),
            enabled=data["enabled"],
        )
        messages.success(request, _("Added %(server)s to the fleet.") % {"server": saved.name})
    else:
        await service.server_update(
            user_id=user.pk,
            server=server,
            name=data["name"],
            base_url=data["base_url"],
            headers=form.headers(),
            enabled=data["enabled"],
        )
        messages.success(request, _("Saved %(server)s.") % {"server": server.name})
    return redirect("models_admin:servers")


async def _is_valid(form: ServerForm) -> bool:
    return await sync_to_async(form.is_valid)()  # the form asks the database about duplicates


@staff_required
@require_http_methods(["GET", "POST"])
async def server_add(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "GET":
        return await _form_page(request, ServerForm(initial={"enabled": True}), server=None)
    return await _save_or_test(request, None)


@staff_required
@require_http_methods(["GET", "POST"])
async def server_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    server = await _server_or_404(pk)
    if request.method == "GET":
        return await _form_page(request, ServerForm(instance=server), server=server)
    return await _save_or_test(request, server)


@staff_required
@require_POST
async def server_toggle(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Disable an enabled server or enable a disabled one."""
    server = await _server_or_404(pk)
    user = await request.auser()
    enabled = not server.enabled
    await service.server_set_enabled(user_id=user.pk, server=server, enabled=enabled)
    if enabled:
        messages.success(request, _("Enabled %(server)s.") % {"server": server.name})
    else:
        messages.success(
            request, _("Disabled %(server)s: nothing is sent to it any more.") % {"server": server.name}
        )
    return redirect("models_admin:servers")


@staff_required
@require_http_methods(["GET", "POST"])
async def server_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Ask for confirmation on a page naming the server, then remove it from the fleet."""
    server = await _server_or_404(pk)
    if request.method == "GET" or request.POST.get("confirm") != "1":
        return await arender(request, "models_admin/server_delete.html", {"server": server, "tab": "servers"})
    user = await request.auser()
    await service.server_delete(user_id=user.pk, server=server)
    messages.success(request, _("Removed %(server)s from the fleet.") % {"server": server.name})
    return redirect("models_admin:servers")


@staff_required
@require_POST
async def server_test(request: HtmxHttpRequest) -> HttpResponse:
    """Test the connection to one listed server: its version and latency, or the error."""
    name = request.POST.get("server", "")
    server = next((candidate for candidate in await fleet.servers_all() if candidate.name == name), None)
    if server is None:
        notice, error = "", _("There is no server named “%(server)s”.") % {"server": name}
    else:
        headers = dict(server.headers) if server.source == "app" else None
        health = await service.server_test(url=server.url, headers=headers)
        notice, error = _test_result(server.name, health)
    if request.htmx:
        context = {"action_notice": notice, "action_error": error}
        return await arender(request, "models_admin/index.html#action-result", context)
    if notice:
        messages.success(request, notice)
    else:
        messages.error(request, error)
    return redirect("models_admin:servers")
