"""The audit log: one entry per admin action, newest first."""

from __future__ import annotations

from asgiref.sync import sync_to_async

from models_admin.models import AuditEntry
from models_admin.services.events import broadcast_activity_changed


async def audit_record(*, user_id: int | None, action: str, model: str, ok: bool, detail: str = "") -> None:
    """Write one audit entry and tell open dashboards about it."""
    await AuditEntry.objects.acreate(
        user_id=user_id,
        action=action,
        model=model[:600],
        outcome=AuditEntry.Outcome.OK if ok else AuditEntry.Outcome.ERROR,
        detail=detail,
    )
    await broadcast_activity_changed()


def audit_recent(*, limit: int = 20) -> list[AuditEntry]:
    return list(AuditEntry.objects.select_related("user").order_by("-created_at", "-id")[:limit])


audit_recent_async = sync_to_async(audit_recent)
