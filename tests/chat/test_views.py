"""Chat pages and partials through Django's test client (no JavaScript)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from chat.models import Conversation, Message


@pytest.fixture
def conversation(user):
    conversation = Conversation.objects.create(owner=user, title="Trip planning", model="llama3.2:latest")
    Message.objects.create(conversation=conversation, role="user", content="Where should we go?")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="**Lisbon** <script>alert(1)</script>",
        eval_count=42,
        eval_duration=1_200_000_000,
        total_duration=1_500_000_000,
    )
    return conversation


def test_it_sends_anonymous_visitors_to_login(client):
    response = client.get(reverse("chat:index"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_it_shows_an_empty_state_and_models_to_a_new_user(user_client, ollama):
    response = user_client.get(reverse("chat:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "What can I help with?" in html
    assert 'value="llama3.2:latest"' in html
    assert "nomic-embed-text" not in html  # embedding models cannot chat
    assert "Your conversations will appear here." in html


def test_it_says_plainly_when_ollama_is_unreachable(user_client, settings):
    from tests.conftest import free_port

    settings.OLLAMA_HOST = f"http://127.0.0.1:{free_port()}"
    response = user_client.get(reverse("chat:index"))
    assert response.status_code == 200
    assert "Ollama is unreachable at http://127.0.0.1:" in response.content.decode()


def test_it_shows_a_conversation_with_escaped_text_and_statistics(user_client, conversation, ollama):
    response = user_client.get(reverse("chat:conversation", args=[conversation.id]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Trip planning" in html and "Where should we go?" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "42 tokens" in html and "35.0 tokens/s" in html and "1.5 s" in html


def test_it_hides_another_users_conversation(other_user, conversation, ollama):
    client = Client()
    client.force_login(other_user)
    for url in (
        reverse("chat:conversation", args=[conversation.id]),
        reverse("chat:history", args=[conversation.id]) + "?before=999",
    ):
        assert client.get(url).status_code == 404
    for name in ("rename", "delete", "pin", "archive", "configure", "set-model"):
        response = client.post(reverse(f"chat:{name}", args=[conversation.id]), {"title": "x", "model": "x"})
        assert response.status_code == 404
    sidebar = client.get(reverse("chat:sidebar"), {"q": "Lisbon"}).content.decode()
    assert "Trip planning" not in sidebar
    assert Conversation.objects.get(pk=conversation.pk).title == "Trip planning"


def test_it_searches_titles_and_message_text(user_client, conversation, user):
    Conversation.objects.create(owner=user, title="Other topic")
    by_text = user_client.get(reverse("chat:sidebar"), {"q": "lisbon"}).content.decode()
    assert "Trip planning" in by_text and "Other topic" not in by_text
    by_title = user_client.get(reverse("chat:sidebar"), {"q": "other"}).content.decode()
    assert "Other topic" in by_title and "Trip planning" not in by_title
    nothing = user_client.get(reverse("chat:sidebar"), {"q": "zzz"}).content.decode()
    assert "No conversation matches" in nothing


def test_it_pages_the_sidebar_newest_first(user_client, user, django_assert_max_num_queries):
    from chat.services import SIDEBAR_PAGE_SIZE

    Conversation.objects.bulk_create(
        [Conversation(owner=user, title=f"Chat {number:03d}") for number in range(SIDEBAR_PAGE_SIZE + 5)]
    )
    with django_assert_max_num_queries(8):
        first = user_client.get(reverse("chat:sidebar")).content.decode()
    assert "Chat 044" in first and "Chat 004" not in first
    assert 'hx-trigger="revealed"' in first
    import re

    cursor = re.search(r"cursor=([^&\"]+)", first).group(1)
    from urllib.parse import unquote

    second = user_client.get(reverse("chat:sidebar"), {"cursor": unquote(cursor)}).content.decode()
    assert "Chat 004" in second and "Chat 000" in second and "Chat 044" not in second


def test_it_renames_pins_archives_and_deletes(user_client, conversation):
    url = reverse("chat:rename", args=[conversation.id])
    assert user_client.post(url, {"title": "  New   name "}).status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "New name"
    user_client.post(reverse("chat:pin", args=[conversation.id]), {"pinned": "1"})
    user_client.post(reverse("chat:archive", args=[conversation.id]), {"archived": "1"})
    conversation.refresh_from_db()
    assert conversation.pinned and conversation.archived
    response = user_client.post(reverse("chat:delete", args=[conversation.id]), HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and "conversations-changed" in response["HX-Trigger"]
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


def test_it_requires_csrf_on_changes(user, conversation):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(reverse("chat:delete", args=[conversation.id]))
    assert response.status_code == 403
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_it_saves_generation_options_and_refuses_bad_ones(user_client, conversation):
    url = reverse("chat:configure", args=[conversation.id])
    user_client.post(
        url,
        {
            "system_prompt": "Be brief.",
            "temperature": "0.3",
            "num_predict": "128",
            "keep_alive": "10m",
            "think": "off",
        },
    )
    conversation.refresh_from_db()
    assert conversation.system_prompt == "Be brief."
    assert conversation.options == {
        "temperature": 0.3,
        "num_predict": 128,
        "keep_alive": "10m",
        "think": False,
    }
    response = user_client.post(url, {"temperature": "hot"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and "Temperature must be a number." in response.content.decode()
    response = user_client.post(url, {"temperature": "7"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400


def test_it_loads_earlier_messages(user_client, user):
    from chat.services import HISTORY_PAGE_SIZE

    conversation = Conversation.objects.create(owner=user, title="Long", model="llama3.2")
    Message.objects.bulk_create(
        [
            Message(conversation=conversation, role="user", content=f"message {n}")
            for n in range(HISTORY_PAGE_SIZE + 10)
        ]
    )
    page = user_client.get(reverse("chat:conversation", args=[conversation.id])).content.decode()
    assert f"message {HISTORY_PAGE_SIZE + 9}" in page and "message 9<" not in page
    first_shown = Message.objects.filter(conversation=conversation).order_by("id")[10].id
    earlier = user_client.get(reverse("chat:history", args=[conversation.id]), {"before": first_shown})
    html = earlier.content.decode()
    assert "message 0" in html and "message 9" in html and "message 10<" not in html


def test_it_remembers_the_default_model(user_client, user):
    user_client.post(reverse("chat:default-model"), {"model": "qwen3:0.6b"})
    user.profile.refresh_from_db()
    assert user.profile.default_model == "qwen3:0.6b"


def test_it_searches_chinese_text_and_several_words(user_client, user):
    conversation = Conversation.objects.create(owner=user, title="旅行")
    Message.objects.create(
        conversation=conversation, role="user", content="我们去里斯本旅行吧, then Porto by train"
    )
    Conversation.objects.create(owner=user, title="Unrelated")
    chinese = user_client.get(reverse("chat:sidebar"), {"q": "里斯本"}).content.decode()
    assert "旅行" in chinese and "Unrelated" not in chinese
    words = user_client.get(reverse("chat:sidebar"), {"q": "porto train"}).content.decode()
    assert "旅行" in words and "Unrelated" not in words
