"""Account pages: log-in, sign-up, the waiting page, and the users page for admins."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event
from django_htmx.middleware import HtmxDetails

from webui.accounts import services
from webui.accounts.throttle import client_address, signup_record
from webui.channels import end_session_sockets, end_user_sessions
from webui.forms import THROTTLED, LoginForm, SignupForm
from webui.models import Profile, user_is_approved

Status = Profile.Status
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _throttled(form) -> bool:
    return form.has_error(NON_FIELD_ERRORS, code=THROTTLED)


# -- log-in, sign-up, waiting page ---------------------------------------------------------
class LoginView(auth_views.LoginView):
    """Django's log-in with throttling: a locked-out attempt answers 429."""

    form_class = LoginForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return super().get_context_data(signup_allowed=services.signup_allowed(), **kwargs)

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if _throttled(form):
            response.status_code = 429
        return response


class LogoutView(auth_views.LogoutView):
    """Django's log-out, which also closes the websockets opened with this session."""

    def post(self, request, *args, **kwargs):
        session_key = request.session.session_key
        response = super().post(request, *args, **kwargs)
        end_session_sockets(session_key)
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change, which also signs the account out of every other session."""

    def form_valid(self, form):
        response = super().form_valid(form)
        end_user_sessions(self.request.user.pk, keep=self.request.session.session_key)
        return response


def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and sign it in; it lands on chat, or on the waiting page."""
    if request.user.is_authenticated:
        return redirect("chat:index")
    if not services.signup_allowed():
        status = 403 if request.method == "POST" else 200
        return render(request, "registration/signup.html", {"closed": True}, status=status)
    form = SignupForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        user = services.account_signup(
            username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
        )
        signup_record(address=client_address(request))
        login(request, user, backend=MODEL_BACKEND)
        return redirect("chat:index" if user_is_approved(user) else "pending")
    status = 429 if form.is_bound and _throttled(form) else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)


@login_required
def pending(request: HttpRequest) -> HttpResponse:
    """Show a signed-in user who may not use the app yet where their account stands."""
    user = request.user
    if user_is_approved(user):
        return redirect("chat:index")
    profile = Profile.objects.filter(user=user).first()
    rejected = profile is not None and profile.status == Status.REJECTED
    return render(request, "accounts/pending.html", {"rejected": rejected})


# -- the users page ------------------------------------------------------------------------
def staff_required(view: Callable) -> Callable:
    """Let staff in; send anonymous visitors to log in; refuse everybody else with 403."""

    @wraps(view)
    @login_required
    def guarded(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return guarded


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    run: Callable[..., None]
    done: str  # message after success, with %(name)s
    style: str = ""
    confirm: str = ""  # question asked before, with %(name)s


ACTIONS = {
    action.name: action
    for action in [
        Action(
            name="approve",
            label=_("Approve"),
            run=services.user_approve,
            done=_("Approved %(name)s."),
            style="btn-primary",
        ),
        Action(
            name="reject",
            label=_("Reject"),
            run=services.user_reject,
            done=_("Rejected %(name)s."),
            style="btn-danger",
            confirm=_("Reject %(name)s? They will not be able to use the app."),
        ),
        Action(
            name="promote",
            label=_("Make admin"),
            run=services.user_promote,
            done=_("%(name)s is now an administrator."),
        ),
        Action(
            name="demote",
            label=_("Remove admin"),
            run=services.user_demote,
            done=_("%(name)s is no longer an administrator."),
        ),
        Action(
            name="deactivate",
            label=_("Deactivate"),
            run=services.user_deactivate,
            done=_("Deactivated %(name)s."),
            style="btn-danger",
            confirm=_("Deactivate %(name)s? They will be signed out and cannot log in."),
        ),
        Action(
            name="reactivate",
            label=_("Reactivate"),
            run=services.user_reactivate,
            done=_("Reactivated %(name)s."),
        ),
    ]
}


@dataclass
class UserRow:
    user: AbstractUser
    status: str
    is_self: bool
    actions: list[dict] = field(default_factory=list)
    error: str = ""

    @property
    def status_label(self) -> str:
        return Status(self.status).label


def _status(user: AbstractUser) -> str:
    if user.is_superuser:
        return Status.APPROVED
    try:
        return user.profile.status
    except Profile.DoesNotExist:
        return Status.PENDING


def _user_row(user: AbstractUser, *, viewer: AbstractUser, error: str = "") -> UserRow:
    """Return what one row of the users page shows, including the buttons that apply."""
    status = _status(user)
    names = []
    if status != Status.APPROVED:
        names.append("approve")
    if status == Status.PENDING and not user.is_staff:
        names.append("reject")
    if user.is_staff:
        names.append("demote")
    elif user.is_active and status == Status.APPROVED:
        names.append("promote")
    names.append("deactivate" if user.is_active else "reactivate")
    username = user.get_username()
    actions = [
        {
            "name": ACTIONS[name].name,
            "label": ACTIONS[name].label,
            "style": ACTIONS[name].style,
            "confirm": ACTIONS[name].confirm % {"name": username} if ACTIONS[name].confirm else "",
        }
        for name in names
    ]
    return UserRow(user=user, status=status, is_self=user.pk == viewer.pk, actions=actions, error=error)


def _pending_count() -> int:
    return Profile.objects.filter(status=Status.PENDING, user__is_superuser=False).count()


@staff_required
def users(request: HtmxHttpRequest) -> HttpResponse:
    """List every account, those waiting for approval first."""
    if request.htmx.target == "pending-count":
        return render(request, "webui/users.html#pending-count", {"pending_count": _pending_count()})
    accounts = (
        get_user_model()
        .objects.select_related("profile")
        .annotate(
            waiting=Case(
                When(is_superuser=False, profile__status=Status.PENDING, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("waiting", "date_joined", "pk")
    )
    rows = [_user_row(account, viewer=request.user) for account in accounts]
    return render(request, "webui/users.html", {"rows": rows, "pending_count": _pending_count()})


def end_admin_sockets(user_id: int) -> None:
    """Close the models dashboard sockets of a user who just lost the admin rights."""
    from models_admin.consumers import admin_group  # loads the models services: only when needed

    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(admin_group(user_id), {"type": "admin.revoked"})


@require_POST
@staff_required
def user_action(request: HtmxHttpRequest, pk: int, action: str) -> HttpResponse:
    """Apply one action to one account; htmx gets the row back, a plain form a redirect."""
    if action not in ACTIONS:
        raise Http404
    todo = ACTIONS[action]
    account = get_object_or_404(get_user_model(), pk=pk)
    name = account.get_username()
    error = ""
    try:
        todo.run(user=account, by=request.user)
        if action in {"deactivate", "reject"}:
            end_user_sessions(account.pk)  # their open sockets would otherwise keep working
        elif action == "demote":
            end_admin_sockets(account.pk)  # the dashboard's live feed is for admins only
    except services.AccountError as refusal:
        error = refusal.message
    # Demoting or deactivating oneself ends one's access to this very page.
    left = account.pk == request.user.pk and not error and action in {"demote", "deactivate"}
    if request.htmx:
        if left:
            return HttpResponseClientRedirect(reverse("chat:index"))
        account = get_user_model().objects.select_related("profile").get(pk=pk)
        response = render(
            request, "webui/users.html#row", {"row": _user_row(account, viewer=request.user, error=error)}
        )
        if not error:
            trigger_client_event(response, "users-changed")
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, todo.done % {"name": name})
    return redirect("chat:index" if left else "users")
