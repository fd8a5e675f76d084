"""Accounts: a profile per user holding approval state and personal preferences."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Profile(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending approval")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    class Theme(models.TextChoices):
        SYSTEM = "system", _("System")
        LIGHT = "light", _("Light")
        DARK = "dark", _("Dark")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    language = models.CharField(max_length=16, blank=True)  # empty = follow the browser
    theme = models.CharField(max_length=16, choices=Theme.choices, default=Theme.SYSTEM)
    default_model = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.status})"


class FirstAdministrator(models.Model):
    """The one account that became administrator because it came first.

    The unique `slot` is what makes that race-safe: when two first sign-ups run at once,
    only one insert of this row can succeed, on every database backend.
    """

    slot = models.PositiveSmallIntegerField(default=1, unique=True)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return str(self.user)


class ThrottleEvent(models.Model):
    """One counted event (a failed login, a sign-up) for rate limiting.

    Kept in the database rather than a per-process cache so that every worker process
    sees the same counts.
    """

    class Scope(models.TextChoices):
        LOGIN_USERNAME = "login-username", _("Failed login for a user name")
        LOGIN_ADDRESS = "login-address", _("Failed login from an address")
        SIGNUP_ADDRESS = "signup-address", _("Sign-up from an address")

    scope = models.CharField(max_length=32, choices=Scope.choices)
    key = models.CharField(max_length=255)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["scope", "key", "created_at"], name="throttle_lookup")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} at {self.created_at:%Y-%m-%d %H:%M:%S}"


def user_is_approved(user) -> bool:
    """Return True when `user` may use the app (superusers always may)."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    try:
        return user.profile.status == Profile.Status.APPROVED
    except Profile.DoesNotExist:
        return False
