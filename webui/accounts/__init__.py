"""Accounts: sign-up with approval, log in/out, password change, the users page for admins.

`urlpatterns` is mounted at /accounts/, `user_admin_urlpatterns` at /users/.
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from webui.accounts.services import account_setup
from webui.accounts.views import (
    LoginView,
    LogoutView,
    PasswordChangeView,
    pending,
    signup,
    user_action,
    users,
)

__all__ = ["account_setup", "pending", "urlpatterns", "user_admin_urlpatterns"]

urlpatterns = [
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("signup/", signup, name="signup"),
    path("password/", PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
]

user_admin_urlpatterns = [
    path("", users, name="users"),
    path("<int:pk>/<slug:action>/", user_action, name="user-action"),
]
