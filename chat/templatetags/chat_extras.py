from __future__ import annotations

from django import template
from django.utils.formats import number_format
from django.utils.translation import gettext as _

register = template.Library()


@register.simple_tag
def reply_stats(message) -> str:
    """Return "42 tokens · 35.2 tokens/s · 1.3 s" for a finished reply (escaped by the caller)."""
    parts = []
    if message.eval_count:
        parts.append(
            _("%(count)s tokens") % {"count": number_format(message.eval_count, force_grouping=True)}
        )
    if message.tokens_per_second:
        parts.append(_("%(rate)s tokens/s") % {"rate": number_format(message.tokens_per_second, 1)})
    if message.total_seconds:
        parts.append(_("%(seconds)s s") % {"seconds": number_format(message.total_seconds, 1)})
    return " · ".join(parts)
