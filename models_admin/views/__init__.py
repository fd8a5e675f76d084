"""The models area for admins: the dashboard, the fleet's servers, the effective settings."""

from __future__ import annotations

from models_admin.views.dashboard import (
    cancel,
    copy,
    create,
    delete,
    detail,
    embed,
    index,
    pull,
    push,
    unload,
)
from models_admin.views.servers import (
    server_add,
    server_delete,
    server_edit,
    server_test,
    server_toggle,
    servers,
)
from models_admin.views.settings import settings_page

__all__ = [
    "cancel",
    "copy",
    "create",
    "delete",
    "detail",
    "embed",
    "index",
    "pull",
    "push",
    "server_add",
    "server_delete",
    "server_edit",
    "server_test",
    "server_toggle",
    "servers",
    "settings_page",
    "unload",
]
