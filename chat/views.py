"""Chat pages and partials. Sending and streaming go over the websocket (chat/consumers.py)."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from chat import services
from chat.models import Conversation, Message
from webui import fleet
from webui.http import HtmxHttpRequest


def _page_context(request, conversation: Conversation | None, models: list[str], models_error: str) -> dict:
    user = request.user
    profile = getattr(user, "profile", None)
    default_model = getattr(profile, "default_model", "") or ""
    current_model = conversation.model if conversation else (default_model or (models[0] if models else ""))
    if current_model and current_model not in models:
        models = [current_model, *models]
    history, has_more = services.history_page(conversation=conversation) if conversation else ([], False)
    query = request.GET.get("q", "")
    return {
        "conversation": conversation,
        "current_id": conversation.id if conversation else "",
        "history": history,
        "has_more": has_more,
        "sidebar": services.sidebar_page(user=user, query=query),
        "query": query,
        "archived": False,
        "models": models,
        "models_error": models_error,
        "current_model": current_model,
        "option_fields": _option_fields(conversation),
        "chat_strings": chat_strings(),
        "blank_user": Message(role=Message.Role.USER, status=Message.Status.COMPLETE),
        "blank_reply": Message(role=Message.Role.ASSISTANT, status=Message.Status.STREAMING),
    }


def chat_strings() -> dict[str, str]:
    """Return the words chat.js shows, translated on the server."""
    return {
        "waiting": _("Waiting for Ollama…"),
        "loading": _("Loading the model…"),
        "thinking": _("Thinking…"),
        "streaming": _("Writing…"),
        "stopped": _("Stopped."),
        "interrupted": _("This reply was interrupted. The text so far is kept."),
        "tokens": _("%(count)s tokens"),
        "rate": _("%(rate)s tokens/s"),
        "seconds": _("%(seconds)s s"),
        "copied": _("Copied"),
        "copy_failed": _("Could not copy"),
        "disconnected": _("Connection lost; reconnecting…"),
        "reconnected": _("Reconnected."),
        "save_send": _("Save and send"),
        "cancel": _("Cancel"),
        "new_chat": _("New chat"),
        "no_model": _("Choose a model first."),
        "done": _("Reply complete."),
        "pull_model": _("Pull this model"),
        "ask_admin": _("Ask an administrator to install it."),
    }


def _option_fields(conversation: Conversation | None) -> dict:
    options = (conversation.options if conversation else {}) or {}
    think = options.get("think")
    return {**options, "think": "" if think is None else ("on" if think else "off")}


@login_required
@require_GET
def index(request: HtmxHttpRequest) -> HttpResponse:
    """Show a new, empty chat: the composer, the model picker and the sidebar."""
    models, error = async_to_sync(fleet.chat_models)()
    return render(request, "chat/room.html", _page_context(request, None, models, error))


@login_required
@require_GET
def conversation_page(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    conversation = services.conversation_for_user(request.user, pk)
    models, error = async_to_sync(fleet.chat_models)()
    return render(request, "chat/room.html", _page_context(request, conversation, models, error))


@login_required
@require_GET
def sidebar(request: HtmxHttpRequest) -> HttpResponse:
    """Return a page of the sidebar: search results, archived ones, or the next page."""
    query = request.GET.get("q", "")
    archived = request.GET.get("archived") == "1"
    page = services.sidebar_page(
        user=request.user, query=query, archived=archived, cursor=request.GET.get("cursor", "")
    )
    current = request.GET.get("current", "")
    context = {"sidebar": page, "query": query, "archived": archived, "current_id": current}
    template = "chat/room.html#sidebar-items" if request.GET.get("cursor") else "chat/room.html#sidebar"
    return render(request, template, context)


@login_required
@require_GET
def history(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Return older messages of a conversation, for "load earlier"."""
    conversation = services.conversation_for_user(request.user, pk)
    try:
        before = int(request.GET.get("before", ""))
    except ValueError:
        raise Http404 from None
    page, has_more = services.history_page(conversation=conversation, before=before)
    return render(
        request,
        "chat/room.html#history",
        {"conversation": conversation, "history": page, "has_more": has_more},
    )


def _after_change(request, conversation: Conversation | None, *, deleted: bool = False) -> HttpResponse:
    """Answer a sidebar action: htmx refreshes the sidebar; without JS, redirect back."""
    if request.htmx:
        if deleted and str(conversation_id_from(request)) == request.POST.get("current", ""):
            return HttpResponseClientRedirect(reverse("chat:index"))
        response = HttpResponse(status=204)
        return trigger_client_event(response, "conversations-changed")
    if deleted or conversation is None:
        return redirect("chat:index")
    return redirect("chat:conversation", pk=conversation.pk)


def conversation_id_from(request: HtmxHttpRequest) -> str:
    return request.resolver_match.kwargs.get("pk", "")


@login_required
@require_POST
def rename(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    conversation = services.conversation_for_user(request.user, pk)
    try:
        services.conversation_rename(conversation=conversation, title=request.POST.get("title", ""))
    except services.ChatError as failure:
        if request.htmx:
            return HttpResponse(failure.message, status=400)
        messages.error(request, failure.message)
    return _after_change(request, conversation)


@login_required
@require_POST
def delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    conversation = services.conversation_for_user(request.user, pk)
    services.conversation_delete(conversation=conversation)
    return _after_change(request, None, deleted=True)


@login_required
@require_POST
def pin(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    conversation = services.conversation_for_user(request.user, pk)
    services.conversation_set_flags(conversation=conversation, pinned=request.POST.get("pinned") == "1")
    return _after_change(request, conversation)


@login_required
@require_POST
def archive(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    conversation = services.conversation_for_user(request.user, pk)
    services.conversation_set_flags(conversation=conversation, archived=request.POST.get("archived") == "1")
    return _after_change(request, conversation)


@login_required
@require_POST
def configure(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Save the conversation's system prompt and generation options."""
    conversation = services.conversation_for_user(request.user, pk)
    try:
        services.conversation_configure(
            conversation=conversation,
            system_prompt=request.POST.get("system_prompt", ""),
            options=request.POST.dict(),
            model=request.POST.get("model", ""),
        )
    except services.ChatError as failure:
        if request.htmx:
            return HttpResponse(failure.message, status=400)
        messages.error(request, failure.message)
        return redirect("chat:conversation", pk=conversation.pk)
    if request.htmx:
        return trigger_client_event(
            HttpResponse(status=204), "settings-saved", {"message": _("Settings saved.")}
        )
    messages.success(request, _("Settings saved."))
    return redirect("chat:conversation", pk=conversation.pk)


@login_required
@require_POST
def set_model(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    conversation = services.conversation_for_user(request.user, pk)
    model = request.POST.get("model", "").strip()
    if model:
        services.conversation_set_model(conversation=conversation, model=model)
    if request.htmx:
        return HttpResponse(status=204)
    return redirect("chat:conversation", pk=conversation.pk)


@login_required
@require_POST
def set_default_model(request: HtmxHttpRequest) -> HttpResponse:
    """Remember the model picked on a new chat as the user's default."""
    model = request.POST.get("model", "").strip()[:200]
    profile = getattr(request.user, "profile", None)
    if model and profile is not None:
        profile.default_model = model
        profile.save(update_fields=["default_model"])
    return HttpResponse(status=204)
