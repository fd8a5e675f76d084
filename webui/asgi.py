"""ASGI entry point: HTTP through Django, websockets through Channels.

Websocket routes pass AllowedHostsOriginValidator (a page from a foreign origin cannot open
a socket with the user's cookies) and AuthMiddlewareStack (the session's user in scope).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webui.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from chat.routing import websocket_urlpatterns as chat_websockets  # noqa: E402
from models_admin.routing import websocket_urlpatterns as models_websockets  # noqa: E402
from webui.startup import recover_after_restart  # noqa: E402

recover_after_restart()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([*chat_websockets, *models_websockets]))
        ),
    }
)
