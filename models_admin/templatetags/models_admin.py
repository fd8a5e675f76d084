"""Small display helpers for the models dashboard."""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

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
    "completion": pgettext_lazy("model capability", "completion"),
    "vision": pgettext_lazy("model capability", "vision"),
    "tools": pgettext_lazy("model capability", "tools"),
    "thinking": pgettext_lazy("model capability", "thinking"),
    "embedding": pgettext_lazy("model capability", "embedding"),
    "insert": pgettext_lazy("model capability", "insert"),
}


@register.filter
def capability_label(capability: str) -> str:
    return str(CAPABILITY_LABELS.get(capability, capability))


# Ollama reports the steps of a pull, push or create in English ("pulling manifest", "pulling
# 2e352627f88e", "verifying sha256 digest"…). Each pattern (JavaScript syntax, anchored at both
# ends) maps to words in the reader's language; models.js gets the same list for live updates.
# A line Ollama adds in a later version shows as it came.
OLLAMA_STATUSES: list[tuple[str, Any]] = [
    (r"pulling manifest", pgettext_lazy("ollama progress", "pulling manifest")),
    (r"pulling (?<digest>\S+)", pgettext_lazy("ollama progress", "pulling %(digest)s")),
    (r"downloading (?<digest>\S+)", pgettext_lazy("ollama progress", "downloading %(digest)s")),
    (r"verifying sha256 digest", pgettext_lazy("ollama progress", "verifying sha256 digest")),
    (r"writing manifest", pgettext_lazy("ollama progress", "writing manifest")),
    (r"removing (?:any )?unused layers", pgettext_lazy("ollama progress", "removing unused layers")),
    (r"success", pgettext_lazy("ollama progress", "success")),
    (r"retrieving manifest", pgettext_lazy("ollama progress", "retrieving manifest")),
    (r"couldn't retrieve manifest", pgettext_lazy("ollama progress", "could not retrieve the manifest")),
    (r"pushing manifest", pgettext_lazy("ollama progress", "pushing manifest")),
    (r"pushing (?<digest>\S+)", pgettext_lazy("ollama progress", "pushing %(digest)s")),
    (r"reading model metadata", pgettext_lazy("ollama progress", "reading model metadata")),
    (r"parsing GGUF", pgettext_lazy("ollama progress", "parsing GGUF")),
    (r"converting model", pgettext_lazy("ollama progress", "converting model")),
    (r"gathering model components", pgettext_lazy("ollama progress", "gathering model components")),
    (r"using autodetected template", pgettext_lazy("ollama progress", "using the autodetected template")),
    (
        r"creating (?<kind>system|adapter|template|parameters|license|model) layer",
        pgettext_lazy("ollama progress", "creating %(kind)s layer"),
    ),
    (r"creating new layer (?<digest>\S+)", pgettext_lazy("ollama progress", "creating new layer %(digest)s")),
    (
        r"using existing layer (?<digest>\S+)",
        pgettext_lazy("ollama progress", "using existing layer %(digest)s"),
    ),
    (
        r"using already created layer (?<digest>\S+)",
        pgettext_lazy("ollama progress", "using already created layer %(digest)s"),
    ),
    (r"writing layer (?<digest>\S+)", pgettext_lazy("ollama progress", "writing layer %(digest)s")),
    (
        r"copying file (?<digest>\S+)(?: (?<percent>\d+%))?",
        pgettext_lazy("ollama progress", "copying file %(digest)s %(percent)s"),
    ),
    (
        r"quantizing (?<source>\S+) model to (?<target>\S+)",
        pgettext_lazy("ollama progress", "quantizing the %(source)s model to %(target)s"),
    ),
]
_PYTHON_PATTERNS = [(re.compile(pattern.replace("(?<", "(?P<")), words) for pattern, words in OLLAMA_STATUSES]


@register.filter
def ollama_status(text: str) -> str:
    """Return one of Ollama's progress lines in the reader's language (unknown lines as they are)."""
    for pattern, words in _PYTHON_PATTERNS:
        match = pattern.fullmatch(text or "")
        if match:
            values = {key: value or "" for key, value in match.groupdict().items()}
            return (str(words) % values).strip()
    return text


@register.simple_tag
def ollama_status_patterns() -> list[tuple[str, str]]:
    """Return the patterns and their words in the reader's language, for models.js."""
    return [(pattern, str(words)) for pattern, words in OLLAMA_STATUSES]


# The audit log stores what happened in plain English words ("started #12 from …", "#12
# succeeded"); these say the known shapes in the reader's language, anything else as stored.
AUDIT_DETAILS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"started #(?P<id>\d+)"), pgettext_lazy("audit log", "started #%(id)s")),
    (
        re.compile(r"started #(?P<id>\d+) from (?P<source>.+)"),
        pgettext_lazy("audit log", "started #%(id)s from %(source)s"),
    ),
    (re.compile(r"joined #(?P<id>\d+)"), pgettext_lazy("audit log", "joined #%(id)s")),
    (re.compile(r"#(?P<id>\d+) succeeded"), pgettext_lazy("audit log", "#%(id)s succeeded")),
    (re.compile(r"#(?P<id>\d+) is not running"), pgettext_lazy("audit log", "#%(id)s is not running")),
    (re.compile(r"(?P<kind>pull|push|create) #(?P<id>\d+)"), pgettext_lazy("audit log", "%(kind)s #%(id)s")),
    (re.compile(r"added (?P<url>\S+)"), pgettext_lazy("audit log", "added %(url)s")),
    (re.compile(r"edited \((?P<url>\S+)\)"), pgettext_lazy("audit log", "edited (%(url)s)")),
    (re.compile(r"enabled"), pgettext_lazy("audit log", "enabled")),
    (re.compile(r"disabled"), pgettext_lazy("audit log", "disabled")),
    (re.compile(r"deleted"), pgettext_lazy("audit log", "deleted")),
    (re.compile(r"on (?P<server>\S+)"), pgettext_lazy("audit log", "on %(server)s")),
]
_ON_SERVER = re.compile(r"(?P<core>.+) on (?P<server>\S+)")


def _audit_core(text: str) -> str | None:
    for pattern, words in AUDIT_DETAILS:
        match = pattern.fullmatch(text)
        if match:
            values = match.groupdict()
            if "kind" in values:
                values["kind"] = kind_label(values["kind"])
            return str(words) % values
    return None


@register.filter
def audit_detail(text: str) -> str:
    """Return an audit entry's detail in the reader's language (unknown shapes as stored)."""
    text = text or ""
    found = _audit_core(text)
    if found is not None:
        return found
    on_server = _ON_SERVER.fullmatch(text)
    if on_server:
        core = _audit_core(on_server["core"])
        if core is not None:
            where = pgettext_lazy("audit log", "on %(server)s") % {"server": on_server["server"]}
            return f"{core} · {where}"
    return text
