from __future__ import annotations

app_name = "models_admin"
urlpatterns: list = []
