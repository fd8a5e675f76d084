"""The settings page: every setting's effective value and source, secrets masked."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def readme_variables() -> list[str]:
    table = (ROOT / "README.md").read_text().split("## Settings")[1].split("\n## ")[0]
    return re.findall(r"^\| `([A-Z_]+)`", table, flags=re.M) + re.findall(
        r"^\| `[A-Z_]+` / `([A-Z_]+)`", table, flags=re.M
    )


def test_it_shows_every_documented_setting(admin_client):
    page = admin_client.get("/settings/").content.decode()

    for name in readme_variables():
        assert f'data-setting="{name}"' in page, f"{name} is documented but not on the settings page"


def test_it_says_where_each_value_came_from_and_masks_secrets(admin_client, monkeypatch, settings):
    monkeypatch.setenv("SECRET_KEY", "x" * 50)
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@127.0.0.1:6379/0")
    monkeypatch.setenv("OLLAMA_HEADERS", '{"Authorization": "Bearer topsecret"}')
    settings.REDIS_URL = "redis://:hunter2@127.0.0.1:6379/0"
    settings.OLLAMA_HEADERS = {"Authorization": "Bearer topsecret"}

    page = admin_client.get("/settings/").content.decode()

    assert "hunter2" not in page and "topsecret" not in page and "x" * 50 not in page
    assert settings.SECRET_KEY not in page
    assert "redis://:••••••@127.0.0.1:6379/0" in page
    assert "Authorization: ••••••" in page

    def row(name: str) -> str:
        return page.split(f'data-setting="{name}"')[1].split("</tr>")[0]

    assert "environment" in row("REDIS_URL") and "environment" in row("SECRET_KEY")
    assert ">default<" in row("MAX_MESSAGE_CHARS") and "100000" in row("MAX_MESSAGE_CHARS")
    assert "http://" in row("OLLAMA_HOST")  # the effective address, even when unset
