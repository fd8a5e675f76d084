"""The verbs of accounts: set up, sign up, approve, reject, promote, demote, (de)activate."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from webui.models import FirstAdministrator, Profile

Status = Profile.Status


class AccountError(Exception):
    """An account change that the rules forbid; `message` is fit to show the admin."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def signup_mode() -> str:
    mode = (settings.SIGNUP_MODE or "approval").strip().lower()
    return mode if mode in {"approval", "open", "closed"} else "approval"


def signup_allowed() -> bool:
    """Return True when the sign-up page takes new accounts.

    A closed install still lets the very first account in; otherwise nobody could ever
    administer it.
    """
    return signup_mode() != "closed" or not get_user_model().objects.exists()


def _claim_first_administrator(user: AbstractUser) -> bool:
    """Return True when `user` is the install's first account and now owns the admin slot."""
    User = get_user_model()
    others = User.objects.exclude(pk=user.pk).filter(Q(profile__isnull=False) | Q(is_superuser=True))
    if others.exists():
        return False
    try:
        # The unique slot settles a race between two first sign-ups on any database: the
        # second insert waits for the first transaction, then fails.
        with transaction.atomic():
            FirstAdministrator.objects.create(user=user)
    except IntegrityError:
        return False
    return True


@transaction.atomic
def account_setup(*, user: AbstractUser) -> Profile:
    """Give a new user a profile; the very first user becomes the administrator.

    Later users wait for approval, unless SIGNUP_MODE is "open".
    """
    existing = Profile.objects.filter(user=user).first()
    if existing is not None:
        return existing
    if _claim_first_administrator(user):
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
        status = Status.APPROVED
    else:
        status = Status.APPROVED if signup_mode() == "open" else Status.PENDING
    return Profile.objects.create(user=user, status=status)


@transaction.atomic
def account_signup(*, username: str, password: str) -> AbstractUser:
    """Create an account with a password and set it up, in one transaction."""
    user = get_user_model().objects.create_user(username=username, password=password)
    account_setup(user=user)
    return user


# -- the users page's actions --------------------------------------------------------------
def _locked(user: AbstractUser) -> AbstractUser:
    """Return `user` re-read under a row lock, so that checks and changes see one state."""
    return get_user_model().objects.select_for_update().get(pk=user.pk)


def _refuse_if_last_admin(*, user: AbstractUser, by: AbstractUser) -> None:
    admins = list(
        get_user_model()
        .objects.select_for_update()
        .filter(is_active=True, is_staff=True)
        .values_list("pk", flat=True)
    )
    if user.pk in admins and len(admins) <= 1:
        if user.pk == by.pk:
            raise AccountError(
                _("You are the last active administrator: make someone else an administrator first.")
            )
        raise AccountError(
            _("%(name)s is the last active administrator: make someone else an administrator first.")
            % {"name": user.get_username()}
        )


def _status_set(user: AbstractUser, status: str) -> None:
    Profile.objects.update_or_create(user=user, defaults={"status": status})


@transaction.atomic
def user_approve(*, user: AbstractUser, by: AbstractUser) -> None:
    _status_set(_locked(user), Status.APPROVED)


@transaction.atomic
def user_reject(*, user: AbstractUser, by: AbstractUser) -> None:
    user = _locked(user)
    if user.is_staff or user.is_superuser:
        raise AccountError(_("Administrators cannot be rejected; remove their admin rights first."))
    _status_set(user, Status.REJECTED)


@transaction.atomic
def user_promote(*, user: AbstractUser, by: AbstractUser) -> None:
    """Make `user` an administrator (staff and superuser), approving them on the way."""
    user = _locked(user)
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    _status_set(user, Status.APPROVED)


@transaction.atomic
def user_demote(*, user: AbstractUser, by: AbstractUser) -> None:
    """Take admin rights away; the user stays approved. Never leaves the install without an admin."""
    _refuse_if_last_admin(user=user, by=by)
    user = _locked(user)
    user.is_staff = user.is_superuser = False
    user.save(update_fields=["is_staff", "is_superuser"])
    _status_set(user, Status.APPROVED)


@transaction.atomic
def user_deactivate(*, user: AbstractUser, by: AbstractUser) -> None:
    """Stop `user` from signing in; their sessions stop working at the next request."""
    _refuse_if_last_admin(user=user, by=by)
    user = _locked(user)
    user.is_active = False
    user.save(update_fields=["is_active"])


@transaction.atomic
def user_reactivate(*, user: AbstractUser, by: AbstractUser) -> None:
    user = _locked(user)
    user.is_active = True
    user.save(update_fields=["is_active"])
