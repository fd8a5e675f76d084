"""The effective settings, for the admins' settings page: each value and where it came from.

The list is read from webui/settings.py itself (every `env_*("NAME", default)` call), so a
setting added there shows up here without another list to keep in step. Secrets are masked:
keys, passwords inside URLs, header values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.utils.translation import pgettext

from webui.ollama import parse_host

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "webui" / "settings.py"
_ENV_CALL = re.compile(
    r"env_(?P<kind>str|bool|int|float|list|headers)\(\s*\"(?P<name>[A-Z][A-Z0-9_]*)\"(?:\s*,\s*(?P<default>[^)\n]*))?\)"
)
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY$|HEADERS")
MASK = "••••••"


@dataclass(frozen=True)
class EffectiveSetting:
    name: str
    value: str
    source: str  # environment | default | file
    secret: bool = False


def _mask_url(value: str) -> str:
    """Return a URL with its password replaced by the mask."""
    parts = urlsplit(value)
    if not parts.password:
        return value
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}{port}"))


def _shown(name: str, value: Any) -> tuple[str, bool]:
    """Return the value as text for people, masked when secret, and whether it was."""
    if isinstance(value, dict):  # headers: names stay, values go
        return ", ".join(f"{key}: {MASK}" for key in value) or "—", bool(value)
    if isinstance(value, (list, tuple)):
        text = ", ".join(str(item) for item in value)
    elif isinstance(value, bool):
        text = pgettext("setting is", "on") if value else pgettext("setting is", "off")
    else:
        text = "" if value is None else str(value)
    if _SECRET_NAME.search(name):
        return (MASK if text else "—"), bool(text)
    if "://" in text:
        masked = ", ".join(_mask_url(part.strip()) for part in text.split(","))
        return masked, masked != text
    return text or "—", False


def _declared() -> list[tuple[str, str]]:
    """Return (name, default as written) for every env_* call in settings.py, in file order."""
    found: dict[str, str] = {}
    for match in _ENV_CALL.finditer(SETTINGS_FILE.read_text()):
        found.setdefault(match["name"], (match["default"] or "").strip())
    return list(found.items())


def _literal(default: str) -> str:
    text = default.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text.replace("_", "")


def settings_effective() -> list[EffectiveSetting]:
    """Return each environment-driven setting with its effective value and its source."""
    rows = []
    for name, default in _declared():
        from_environment = bool(os.environ.get(name, "").strip())
        value: Any = getattr(settings, name) if hasattr(settings, name) else None
        if value is None:
            value = os.environ.get(name, "").strip() if from_environment else _literal(default)
        if name == "OLLAMA_HOST":  # empty means the official client's default
            value = parse_host(value or None)
        source = "environment" if from_environment else "default"
        if name == "SECRET_KEY" and not from_environment:
            source = "file"  # generated once into DATA_DIR/secret_key
        text, masked = _shown(name, value)
        rows.append(EffectiveSetting(name=name, value=text, source=source, secret=masked))
    return rows
