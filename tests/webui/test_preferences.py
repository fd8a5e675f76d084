"""Language and theme follow the user: chosen once, remembered on the profile."""

from __future__ import annotations

from django.urls import reverse


def test_it_switches_language_and_remembers_it_on_the_profile(user_client, user, ollama):
    response = user_client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    assert response.status_code == 302
    user.profile.refresh_from_db()
    assert user.profile.language == "zh-hans"
    user_client.cookies.clear()  # another browser: no language cookie
    user_client.force_login(user)
    page = user_client.get("/", HTTP_ACCEPT_LANGUAGE="en")
    assert '<html lang="zh-hans"' in page.content.decode()


def test_it_refuses_an_unknown_language_without_saving(user_client, user):
    user_client.post(reverse("set_language"), {"language": "xx", "next": "/"})
    user.profile.refresh_from_db()
    assert user.profile.language == ""


def test_it_follows_the_browser_language_by_default(user_client, ollama):
    page = user_client.get("/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert '<html lang="zh-hans"' in page.content.decode()


def test_it_remembers_the_theme(user_client, user):
    assert user_client.post(reverse("theme-set"), {"theme": "dark"}).status_code == 204
    user.profile.refresh_from_db()
    assert user.profile.theme == "dark"
    assert user_client.post(reverse("theme-set"), {"theme": "pink"}).status_code == 400
