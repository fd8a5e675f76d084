"""Settings: the typed env helpers, the generated secret key, database and channel-layer choices."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from webui import settings as webui_settings

ROOT = Path(__file__).resolve().parents[2]

# Read in a fresh interpreter, so the environment under test never leaks into this process's Django.
PRINT_SETTINGS = """
import json
import webui.settings as s
print(json.dumps({
    "engine": s.DATABASES["default"]["ENGINE"],
    "options": s.DATABASES["default"].get("OPTIONS", {}),
    "channel_layer": s.CHANNEL_LAYERS["default"]["BACKEND"],
    "cache": s.CACHES["default"]["BACKEND"],
    "secret_key": s.SECRET_KEY,
    "debug": s.DEBUG,
    "allowed_hosts": s.ALLOWED_HOSTS,
    "middleware": s.MIDDLEWARE,
    "backends": s.AUTHENTICATION_BACKENDS,
}))
"""
CLEARED = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DEBUG", "ALLOWED_HOSTS", "REMOTE_USER_HEADER")


def settings_with(tmp_path: Path, **env: str) -> dict:
    environment = {key: value for key, value in os.environ.items() if key not in CLEARED}
    environment.update(DATA_DIR=str(tmp_path), **env)
    completed = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False), ("no", False), ("off", False)],
)
def test_it_reads_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("WEBUI_TEST_FLAG", raw)
    assert webui_settings.env_bool("WEBUI_TEST_FLAG", not expected) is expected


def test_it_falls_back_to_defaults_for_unset_or_blank_values(monkeypatch):
    monkeypatch.delenv("WEBUI_TEST_UNSET", raising=False)
    monkeypatch.setenv("WEBUI_TEST_BLANK", "  ")
    assert webui_settings.env_bool("WEBUI_TEST_UNSET", True) is True
    assert webui_settings.env_bool("WEBUI_TEST_BLANK", True) is True
    assert webui_settings.env_int("WEBUI_TEST_BLANK", 7) == 7
    assert webui_settings.env_float("WEBUI_TEST_UNSET", 1.5) == 1.5
    assert webui_settings.env_list("WEBUI_TEST_UNSET", "a,b") == ["a", "b"]
    assert webui_settings.env_headers("WEBUI_TEST_UNSET") == {}


def test_it_reads_numbers_and_lists(monkeypatch):
    monkeypatch.setenv("WEBUI_TEST_INT", " 42 ")
    monkeypatch.setenv("WEBUI_TEST_FLOAT", "0.25")
    monkeypatch.setenv("WEBUI_TEST_LIST", " a.example , ,b.example,")
    assert webui_settings.env_int("WEBUI_TEST_INT", 1) == 42
    assert webui_settings.env_float("WEBUI_TEST_FLOAT", 1.0) == 0.25
    assert webui_settings.env_list("WEBUI_TEST_LIST") == ["a.example", "b.example"]


def test_it_refuses_a_number_that_is_not_one(monkeypatch):
    monkeypatch.setenv("WEBUI_TEST_INT", "five")
    with pytest.raises(ValueError):
        webui_settings.env_int("WEBUI_TEST_INT", 1)


def test_it_reads_headers_as_json_or_as_pairs(monkeypatch):
    monkeypatch.setenv("WEBUI_TEST_HEADERS", '{"Authorization": "Bearer abc", "X-Retries": 3}')
    assert webui_settings.env_headers("WEBUI_TEST_HEADERS") == {
        "Authorization": "Bearer abc",
        "X-Retries": "3",
    }
    monkeypatch.setenv("WEBUI_TEST_HEADERS", "Authorization: Bearer a:b ; X-Team:  blue;junk")
    assert webui_settings.env_headers("WEBUI_TEST_HEADERS") == {
        "Authorization": "Bearer a:b",
        "X-Team": "blue",
    }


def test_it_generates_the_secret_key_once_and_reuses_it(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setattr(webui_settings, "DATA_DIR", tmp_path)

    first = webui_settings._secret_key()
    second = webui_settings._secret_key()

    key_file = tmp_path / "secret_key"
    assert first == second == key_file.read_text().strip()
    assert len(first) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_it_prefers_the_secret_key_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    monkeypatch.setattr(webui_settings, "DATA_DIR", tmp_path)
    assert webui_settings._secret_key() == "from-the-environment"
    assert not (tmp_path / "secret_key").exists()


def test_it_tunes_sqlite_and_keeps_everything_in_process_by_default(tmp_path):
    loaded = settings_with(tmp_path)

    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in loaded["options"]["init_command"]
    assert loaded["options"]["transaction_mode"] == "IMMEDIATE"
    assert loaded["channel_layer"] == "channels.layers.InMemoryChannelLayer"
    assert loaded["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert loaded["debug"] is False
    assert loaded["secret_key"] == (tmp_path / "secret_key").read_text().strip()
    assert settings_with(tmp_path)["secret_key"] == loaded["secret_key"]  # a restart keeps sessions


def test_it_switches_to_redis_and_postgresql_when_configured(tmp_path):
    loaded = settings_with(
        tmp_path,
        REDIS_URL="redis://127.0.0.1:6379/0",
        DATABASE_URL="postgres://webui:pw@127.0.0.1:5432/webui",
        SECRET_KEY="fixed",
    )

    assert loaded["channel_layer"] == "webui.redis_layer.RedisChannelLayer"
    assert loaded["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert "transaction_mode" not in loaded["options"]
    assert loaded["secret_key"] == "fixed"
    assert not (tmp_path / "secret_key").exists()


def test_it_turns_on_trusted_header_sign_in_only_when_asked(tmp_path):
    plain = settings_with(tmp_path)
    sso = settings_with(tmp_path, REMOTE_USER_HEADER="HTTP_X_REMOTE_USER")

    assert "webui.middleware.TrustedHeaderMiddleware" not in plain["middleware"]
    assert "webui.middleware.TrustedHeaderBackend" not in plain["backends"]
    middleware = sso["middleware"]
    assert middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware") < middleware.index(
        "webui.middleware.TrustedHeaderMiddleware"
    )
    assert middleware.index("webui.middleware.TrustedHeaderMiddleware") < middleware.index(
        "webui.middleware.ApprovalRequiredMiddleware"
    )
    assert sso["backends"][0] == "webui.middleware.TrustedHeaderBackend"
