"""The dashboard socket: live progress of every operation for every admin, plus a few actions.

Frames are documented in docs/websocket-models.md.
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from models_admin import services
from models_admin.names import model_name_parse
from models_admin.services.events import GROUP
from webui import fleet
from webui.channels import ClosedSocketQuiet, join_session_group, scope_user_staff
from webui.models import user_is_approved

FORBIDDEN = 4403
SIGNED_OUT = 4401  # the login session ended (log out, account deactivated), as on the chat socket


def admin_group(user_id: int) -> str:
    """Return the group of one admin's dashboard sockets (closed when they lose the rights)."""
    return f"models-admin-{user_id}"


@database_sync_to_async
def _still_staff(user_id: int) -> bool:
    user = get_user_model().objects.filter(pk=user_id).select_related("profile").first()
    return bool(user and user.is_staff and user_is_approved(user))


class ModelsConsumer(ClosedSocketQuiet, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        if not await scope_user_staff(self.scope):
            await self.close(code=FORBIDDEN)
            return
        self.user = self.scope["user"]
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.channel_layer.group_add(admin_group(self.user.pk), self.channel_name)
        self.session_group = await join_session_group(self)
        await self.accept()
        await self._send_snapshot()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)
        if getattr(self, "user", None) is not None:
            await self.channel_layer.group_discard(admin_group(self.user.pk), self.channel_name)
        if getattr(self, "session_group", None):
            await self.channel_layer.group_discard(self.session_group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if not text_data or len(text_data) > settings.WS_MAX_FRAME_BYTES:
            await self._error(_("That message could not be read."))
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested too deep
            await self._error(_("That message could not be read."))
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs) -> None:
        if not isinstance(content, dict):
            await self._error(_("That message could not be read."))
            return
        kind = content.get("type")
        # Rights can be taken away while a socket is open: check them again for every action.
        if not await _still_staff(self.user.pk):
            await self._error(_("You are no longer allowed to manage models."), request=kind)
            await self.close(code=FORBIDDEN)
            return
        if kind == "snapshot":
            await self._send_snapshot()
        elif kind in ("pull", "push"):
            await self._start(kind, content.get("model"), content.get("server"))
        elif kind == "cancel":
            await self._cancel(content.get("operation"))
        else:
            await self._error(_("Unknown request."), request=kind)

    async def _start(self, kind: str, name: Any, server: Any = None) -> None:
        if not isinstance(name, str):
            await self._error(_("Enter a model name, for example llama3.2."), request=kind)
            return
        try:
            model_name_parse(name)
        except ValidationError as error:
            await self._error(" ".join(error.messages), request=kind)
            return
        if server is not None and not isinstance(server, str):
            await self._error(_("Which server? Send its name, or * for every server."), request=kind)
            return
        name, named = name.strip(), (server if server != fleet.ALL else "")
        chosen = await fleet.server_named(named) if named else None
        if named and chosen is None:
            await self._error(_("There is no server named “%(server)s”.") % {"server": named}, request=kind)
            return
        targets: list[fleet.Server | None]
        if kind == "pull":  # on the chosen server, else one pull per server
            targets = [chosen] if chosen else list(await fleet.targets(fleet.ALL))
        else:  # a push goes from the chosen server, else from one that has the model
            targets = [chosen]
        verb = services.model_pull if kind == "pull" else services.model_push
        for target in targets:
            snapshot, joined = await verb(
                user_id=self.user.pk, username=self.user.get_username(), name=name, server=target
            )
            frame = {"type": "started", "request": kind, "joined": joined, "operation": snapshot}
            await self.send_json(frame)

    async def _cancel(self, operation_id: Any) -> None:
        if not isinstance(operation_id, int) or isinstance(operation_id, bool):
            await self._error(_("Which operation? Send its id."), request="cancel")
            return
        if not await services.operation_cancel(user_id=self.user.pk, operation_id=operation_id):
            await self._error(_("That operation is not running (any more)."), request="cancel")

    async def _send_snapshot(self) -> None:
        await self.send_json({"type": "snapshot", "operations": await services.operations_current()})

    async def _error(self, message: str, *, request: Any = None) -> None:
        await self.send_json(
            {"type": "error", "request": request if isinstance(request, str) else None, "message": message}
        )

    # -- group messages ------------------------------------------------------------------
    async def session_ended(self, event: dict[str, Any]) -> None:
        """Close the socket when its login session ends (see webui.channels)."""
        await self.close(code=SIGNED_OUT)

    async def admin_revoked(self, event: dict[str, Any]) -> None:
        """Close the dashboard at once when its user is no longer an admin (see the users page)."""
        await self.close(code=FORBIDDEN)

    async def operation_update(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "operation", "operation": event["operation"]})

    async def models_changed(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "models.changed"})

    async def activity_changed(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "activity.changed"})
