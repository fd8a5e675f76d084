from __future__ import annotations

from django.urls import path

from models_admin import views

app_name = "models_admin"
urlpatterns = [
    path("", views.index, name="index"),
    path("pull/", views.pull, name="pull"),
    path("push/", views.push, name="push"),
    path("create/", views.create, name="create"),
    path("copy/", views.copy, name="copy"),
    path("delete/", views.delete, name="delete"),
    path("unload/", views.unload, name="unload"),
    path("embed/", views.embed, name="embed"),
    path("operations/<int:pk>/cancel/", views.cancel, name="cancel"),
    path("servers/", views.servers, name="servers"),
    path("servers/add/", views.server_add, name="server-add"),
    path("servers/test/", views.server_test, name="server-test"),
    path("servers/<int:pk>/", views.server_edit, name="server-edit"),
    path("servers/<int:pk>/toggle/", views.server_toggle, name="server-toggle"),
    path("servers/<int:pk>/delete/", views.server_delete, name="server-delete"),
    # Names hold '/' and ':' (hf.co/org/repo:Q4_K_M); links always carry the tag, so a model
    # called "create" is reached as /models/create:latest/ and never shadowed by the pages above.
    path("<path:name>/", views.detail, name="detail"),
]
