"""Small display helpers for the models dashboard."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from models_admin.models import AuditEntry, Operation

register = template.Library()


@register.filter
def seconds_short(value) -> str:
    """Return a duration in seconds as `1 h 4 min`, `3 min 5 s` or `12 s`."""
    if value is None or value == "":
        return ""
    seconds = round(float(value.total_seconds() if hasattr(value, "total_seconds") else value))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return _("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": minutes}
    if minutes:
        return _("%(minutes)s min %(seconds)s s") % {"minutes": minutes, "seconds": seconds}
    return _("%(seconds)s s") % {"seconds": seconds}


@register.filter
def kind_label(kind: str) -> str:
    return str(Operation.Kind(kind).label) if kind in Operation.Kind.values else kind


@register.filter
def status_label(status: str) -> str:
    return str(Operation.Status(status).label) if status in Operation.Status.values else status


@register.filter
def action_label(action: str) -> str:
    return str(AuditEntry.Action(action).label) if action in AuditEntry.Action.values else action


STATUS_BADGES = {
    Operation.Status.RUNNING: "badge-warn",
    Operation.Status.SUCCEEDED: "badge-ok",
    Operation.Status.FAILED: "badge-danger",
    Operation.Status.CANCELLED: "badge-muted",
    AuditEntry.Outcome.OK: "badge-ok",
    AuditEntry.Outcome.ERROR: "badge-danger",
}


@register.filter
def badge_class(status: str) -> str:
    return STATUS_BADGES.get(status, "badge-muted")


CAPABILITY_LABELS = {
    "completion": _lazy("completion"),
    "vision": _lazy("vision"),
    "tools": _lazy("tools"),
    "thinking": _lazy("thinking"),
    "embedding": _lazy("embedding"),
    "insert": _lazy("insert"),
}


@register.filter
def capability_label(capability: str) -> str:
    return str(CAPABILITY_LABELS.get(capability, capability))
