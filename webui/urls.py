from __future__ import annotations

from django.urls import include, path

from models_admin import views as models_admin_views
from webui import accounts, health, preferences

urlpatterns = [
    path("", include("chat.urls")),
    path("models/", include("models_admin.urls")),
    path("settings/", models_admin_views.settings_page, name="settings"),
    path("accounts/", include(accounts.urlpatterns)),
    path("users/", include(accounts.user_admin_urlpatterns)),
    path("pending/", accounts.pending, name="pending"),
    path("healthz", health.healthz, name="healthz"),
    path("healthz/banner", health.banner, name="health-banner"),
    path("readyz", health.readyz, name="readyz"),
    path("i18n/setlang/", preferences.language_set, name="set_language"),
    path("preferences/theme/", preferences.theme_set, name="theme-set"),
]
