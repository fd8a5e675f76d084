"""Accounts: sign-up with approval, log in/out, password change, the users page for admins."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import render
from django.urls import path

from webui.models import Profile


@transaction.atomic
def account_setup(*, user) -> Profile:
    """Give a new user a profile; the very first user becomes the administrator."""
    first = not Profile.objects.exists() and not type(user).objects.exclude(pk=user.pk).exists()
    if first:
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    status = Profile.Status.APPROVED if first else Profile.Status.PENDING
    profile, _created = Profile.objects.get_or_create(user=user, defaults={"status": status})
    return profile


@login_required
def pending(request):
    return render(request, "accounts/pending.html", {})


urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
user_admin_urlpatterns: list = []
