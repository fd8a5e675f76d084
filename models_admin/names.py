"""Ollama model names: the grammar `[host/][namespace/]model[:tag]`, checked before Ollama is asked.

Follows Ollama's `types/model/name.go`: each part starts with a letter, digit or `_` and goes
on with letters, digits, `_` and `-`; `.` is allowed except in the namespace; `:` only in the
host (for a port). Parts are 1–80 characters long, the host up to 350.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MAX_PART = 80
MAX_HOST = 350
MAX_NAME = MAX_HOST + 3 * (MAX_PART + 1)

_FIRST = frozenset(string.ascii_letters + string.digits + "_")
_LATER = _FIRST | {"-"}


@dataclass(frozen=True)
class ModelName:
    host: str
    namespace: str
    model: str
    tag: str

    @property
    def display(self) -> str:
        """Return the shortest form Ollama shows, tag always present (`llama3.2:latest`)."""
        prefix = ""
        if self.host != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        return f"{prefix}{self.model}:{self.tag}"

    @property
    def key(self) -> str:
        """Return a form equal for every spelling of the same model (lookups are case-insensitive)."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}".lower()


def _part_ok(part: str, *, kind: str) -> bool:
    limit = MAX_HOST if kind == "host" else MAX_PART
    if not 1 <= len(part) <= limit or part[0] not in _FIRST:
        return False
    allowed = set(_LATER)
    if kind != "namespace":
        allowed.add(".")
    if kind == "host":
        allowed.add(":")
    return all(character in allowed for character in part[1:])


def model_name_parse(raw: str) -> ModelName:
    """Return the parts of a model name, or raise ValidationError saying what is wrong with it."""
    name = (raw or "").strip()
    if not name:
        raise ValidationError(_("Enter a model name, for example llama3.2."), code="required")
    if len(name) > MAX_NAME:
        raise ValidationError(
            _("That model name is too long (%(length)s characters; at most %(limit)s)."),
            code="too_long",
            params={"length": len(name), "limit": MAX_NAME},
        )
    if any(character.isspace() for character in name):
        raise ValidationError(_("A model name cannot contain spaces."), code="space")
    tag = ""
    if name.rfind(":") > name.rfind("/"):  # a tag is whatever follows the last ':' after the last '/'
        name, tag = name.rsplit(":", 1)
        if not tag:
            raise ValidationError(_("The tag after ':' is empty."), code="empty_tag")
    parts = name.split("/")
    if len(parts) > 3:
        raise ValidationError(
            _("A model name has at most three parts: host/namespace/model, then an optional :tag."),
            code="too_many_parts",
        )
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    if len(parts) == 3:
        host, namespace, model = parts
    elif len(parts) == 2:
        namespace, model = parts
    else:
        (model,) = parts
    for part, kind in ((host, "host"), (namespace, "namespace"), (model, "model"), (tag or "x", "tag")):
        if not _part_ok(part, kind=kind):
            raise ValidationError(
                _(
                    "“%(part)s” is not a valid %(kind)s: use letters, digits, '_', '-' and '.', "
                    "start with a letter, digit or '_', at most %(limit)s characters."
                ),
                code="invalid_part",
                params={
                    "part": part[:40],
                    "kind": _PART_LABELS[kind],
                    "limit": MAX_HOST if kind == "host" else MAX_PART,
                },
            )
    return ModelName(host=host, namespace=namespace, model=model, tag=tag or DEFAULT_TAG)


_PART_LABELS = {
    "host": _("registry host"),
    "namespace": _("namespace"),
    "model": _("model name"),
    "tag": _("tag"),
}


def model_name_validate(raw: str) -> None:
    """Raise ValidationError unless `raw` is a valid Ollama model name (a form field validator)."""
    model_name_parse(raw)
