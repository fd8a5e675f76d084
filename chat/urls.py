from __future__ import annotations

from django.urls import path

from chat import views

app_name = "chat"
urlpatterns = [
    path("", views.index, name="index"),
    path("c/<int:pk>/", views.conversation_page, name="conversation"),
    path("c/<int:pk>/history/", views.history, name="history"),
    path("c/<int:pk>/rename/", views.rename, name="rename"),
    path("c/<int:pk>/delete/", views.delete, name="delete"),
    path("c/<int:pk>/pin/", views.pin, name="pin"),
    path("c/<int:pk>/archive/", views.archive, name="archive"),
    path("c/<int:pk>/settings/", views.configure, name="configure"),
    path("c/<int:pk>/model/", views.set_model, name="set-model"),
    path("default-model/", views.set_default_model, name="default-model"),
    path("sidebar/", views.sidebar, name="sidebar"),
]
