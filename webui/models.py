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
