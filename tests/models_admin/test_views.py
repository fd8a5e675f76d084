"""The dashboard's pages and forms, through the Django test client against the Ollama double."""

from __future__ import annotations

import httpx
import pytest
from django.test import Client

from models_admin.models import AuditEntry, Operation
from tests.conftest import free_port

PAGES = [
    "/models/",
    "/models/create/",
    "/models/embed/",
    "/models/llama3.2:latest/",
    "/models/delete/?model=x",
]
ACTIONS = [
    ("/models/pull/", {"model": "llama3.2"}),
    ("/models/push/", {"model": "llama3.2"}),
    ("/models/create/", {"name": "x", "base": "llama3.2:latest"}),
    ("/models/copy/", {"source": "llama3.2:latest", "destination": "x"}),
    ("/models/delete/", {"model": "llama3.2:latest", "confirm": "1"}),
    ("/models/unload/", {"model": "llama3.2:latest"}),
    ("/models/embed/", {"model": "nomic-embed-text:latest", "text": "hi"}),
    ("/models/operations/1/cancel/", {}),
]
HTMX = {"HTTP_HX_REQUEST": "true"}


def htmx_target(target: str) -> dict[str, str]:
    return {**HTMX, "HTTP_HX_TARGET": target}


def load_model(double, model: str = "llama3.2") -> None:
    """Load a model in the double as a chat would (an empty generate)."""
    httpx.post(f"{double.url}/api/generate", json={"model": model, "stream": False}).raise_for_status()


def paths_requested(double) -> list[str]:
    return [entry["path"] for entry in double.requests]


# -- access --------------------------------------------------------------------------------
@pytest.mark.parametrize("url", PAGES)
def test_it_sends_anonymous_visitors_to_log_in(db, ollama, url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize(("url", "data"), ACTIONS)
def test_it_refuses_actions_of_anonymous_visitors(db, ollama, url, data):
    response = Client().post(url, data)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not [path for path in paths_requested(ollama) if path != "/api/version"]


@pytest.mark.parametrize("url", PAGES)
def test_it_forbids_pages_to_normal_users(user_client, ollama, url):
    assert user_client.get(url).status_code == 403


@pytest.mark.parametrize(("url", "data"), ACTIONS)
def test_it_forbids_actions_to_normal_users(user_client, ollama, url, data):
    assert user_client.post(url, data).status_code == 403
    assert ollama.requests == []
    assert not Operation.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("url", [*PAGES, *[url for url, _data in ACTIONS]])
def test_it_sends_pending_users_to_the_waiting_page(pending_user, ollama, url):
    client = Client()
    client.force_login(pending_user)
    response = client.post(url) if url in dict(ACTIONS) else client.get(url)
    assert response.status_code == 302
    assert response["Location"] == "/pending/"


def test_it_forbids_a_staff_member_awaiting_approval(pending_user, ollama):
    pending_user.is_staff = True
    pending_user.save()
    client = Client()
    client.force_login(pending_user)
    response = client.get("/models/")
    assert response["Location"] == "/pending/"


# -- the list ------------------------------------------------------------------------------
def test_it_lists_installed_models_with_their_details(admin_client, ollama):
    digest = ollama.models["llama3.2:latest"]["digest"]

    response = admin_client.get("/models/")

    assert response.status_code == 200
    page = response.content.decode()
    for name in ["llama3.2:latest", "llava:7b", "qwen3:0.6b", "nomic-embed-text:latest"]:
        assert f'data-model="{name}"' in page
    assert "3.2B" in page and "Q4_K_M" in page and "llama" in page
    assert "1.9\xa0GB" in page  # 2,019,393,189 bytes, in human units
    assert f'<code title="{digest}">{digest[:12]}</code>' in page
    assert 'href="/models/llama3.2:latest/"' in page
    modified = response.context["models"][0].modified_at
    assert f'datetime="{modified.isoformat()}"' in page or "<time datetime=" in page
    assert 'title="May' in page  # the exact time on hover


def test_it_sorts_models_on_the_server(admin_client, ollama):
    def order(query: str) -> list[str]:
        return [model.name for model in admin_client.get("/models/" + query).context["models"]]

    assert order("") == ["llama3.2:latest", "llava:7b", "qwen3:0.6b", "nomic-embed-text:latest"]
    assert order("?sort=name&dir=asc") == sorted(order(""))
    assert order("?sort=name&dir=desc") == sorted(order(""), reverse=True)
    assert order("?sort=size&dir=desc")[0] == "llava:7b"
    assert order("?sort=size&dir=asc")[0] == "nomic-embed-text:latest"
    assert order("?sort=modified&dir=asc")[0] == "nomic-embed-text:latest"
    assert order("?sort=nonsense&dir=sideways") == order("")


def test_it_filters_with_an_htmx_partial(admin_client, ollama):
    response = admin_client.get("/models/?q=qwen", **htmx_target("model-table"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page and 'id="model-table"' in page
    assert 'data-model="qwen3:0.6b"' in page
    assert 'data-model="llama3.2:latest"' not in page
    assert 'hx-get="/models/?q=qwen&amp;sort=modified&amp;dir=desc"' in page  # re-fetches keep the filter


def test_it_wires_the_filter_input_for_htmx(admin_client, ollama):
    page = admin_client.get("/models/").content.decode()
    assert 'hx-trigger="input changed delay:200ms, search"' in page
    assert 'hx-target="#model-table"' in page


def test_it_says_when_the_filter_matches_nothing(admin_client, ollama):
    page = admin_client.get("/models/?q=zzz", **htmx_target("model-table")).content.decode()
    assert "No installed model matches" in page


def test_it_explains_how_to_pull_a_first_model(admin_client, ollama):
    ollama.models.clear()

    page = admin_client.get("/models/").content.decode()

    assert "No models installed yet." in page
    assert '<input type="hidden" name="model" value="llama3.2">' in page


def test_it_renders_an_error_box_when_ollama_is_unreachable(admin_client, settings, db):
    settings.OLLAMA_HOST = f"http://127.0.0.1:{free_port()}"

    response = admin_client.get("/models/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Cannot list the installed models." in page
    assert "Ollama is unreachable at" in page
    assert 'class="banner banner-error"' in page


def test_it_shows_loaded_models_and_unloads_one(admin_client, ollama, admin_user):
    load_model(ollama)

    page = admin_client.get("/models/").content.decode()
    assert "Loaded now" in page
    assert "100% on GPU" in page
    partial = admin_client.get("/models/", **htmx_target("loaded-models")).content.decode()
    assert partial.lstrip().startswith('<div id="loaded-models"')
    assert partial.count("<tr data-model=") == 1 and 'data-model="llama3.2:latest"' in partial
    assert "4,096" in partial  # the context length

    response = admin_client.post(
        "/models/unload/", {"model": "llama3.2:latest"}, **htmx_target("action-result")
    )

    assert response.status_code == 200
    assert "Unloaded llama3.2:latest." in response.content.decode()
    assert "models-changed" in response["HX-Trigger"]
    assert ollama.loaded_models() == []
    entry = AuditEntry.objects.get()
    assert (entry.user, entry.action, entry.model, entry.outcome) == (
        admin_user,
        "unload",
        "llama3.2:latest",
        "ok",
    )


# -- pull form -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("../../x", "is not a valid"),
        ("a b", "cannot contain spaces"),
        ("", "Enter a model name"),
        ("x" * 10_000, "too long"),
    ],
)
def test_it_refuses_a_bad_pull_before_asking_ollama(admin_client, ollama, name, says):
    response = admin_client.post("/models/pull/", {"model": name})

    assert response.status_code == 400
    assert says in response.content.decode()
    assert "/api/pull" not in paths_requested(ollama)
    assert not Operation.objects.exists()


def test_it_answers_a_bad_htmx_pull_with_the_form_partial(admin_client, ollama):
    response = admin_client.post("/models/pull/", {"model": "a b"}, **htmx_target("pull-form"))

    assert response.status_code == 200
    page = response.content.decode()
    assert page.lstrip().startswith('<form id="pull-form"')
    assert "cannot contain spaces" in page


# -- delete --------------------------------------------------------------------------------
def test_it_asks_for_confirmation_naming_the_model_before_deleting(admin_client, ollama):
    response = admin_client.post("/models/delete/", {"model": "llava:7b"})

    assert response.status_code == 200
    assert "Delete llava:7b?" in response.content.decode()
    assert "llava:7b" in ollama.models
    assert "/api/delete" not in paths_requested(ollama)


def test_it_puts_the_model_name_in_the_delete_confirmation_of_each_row(admin_client, ollama):
    page = admin_client.get("/models/").content.decode()
    assert 'hx-confirm="Delete llava:7b from the Ollama server?' in page


def test_it_deletes_a_model_once_confirmed(admin_client, ollama, admin_user):
    response = admin_client.post("/models/delete/", {"model": "llava:7b", "confirm": "1"})

    assert response.status_code == 302
    assert "llava:7b" not in ollama.models
    assert AuditEntry.objects.get().action == "delete"
    page = admin_client.get(response["Location"]).content.decode()
    assert "Deleted llava:7b." in page
    assert 'data-model="llava:7b"' not in page


def test_it_deletes_with_htmx_and_asks_the_table_to_refresh(admin_client, ollama):
    response = admin_client.post(
        "/models/delete/", {"model": "llava:7b", "confirm": "1"}, **htmx_target("action-result")
    )

    assert response.status_code == 200
    assert "Deleted llava:7b." in response.content.decode()
    assert "models-changed" in response["HX-Trigger"]


def test_it_shows_ollamas_404_plainly_when_deleting(admin_client, ollama):
    response = admin_client.post(
        "/models/delete/", {"model": "ghost:latest", "confirm": "1"}, **htmx_target("action-result")
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "banner-error" in page
    assert "Model not found: model &#x27;ghost:latest&#x27; not found" in page
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.outcome) == ("delete", "error")
    assert "not found" in entry.detail


def test_it_shows_the_delete_error_after_a_plain_post(admin_client, ollama):
    response = admin_client.post("/models/delete/", {"model": "ghost:latest", "confirm": "1"}, follow=True)
    assert "Model not found" in response.content.decode()


# -- inspect -------------------------------------------------------------------------------
def test_it_inspects_a_model(admin_client, ollama):
    response = admin_client.get("/models/llama3.2:latest/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-capability="completion"' in page and 'data-capability="tools"' in page
    assert '<dd data-field="context-length">131,072</dd>' in page
    assert '<dd data-field="embedding-length">3,072</dd>' in page
    assert "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT" in page
    assert 'data-field="parameters">stop' in page
    assert "FROM " in page  # the modelfile


def test_it_inspects_names_with_slashes_and_shows_the_system_prompt(admin_client, ollama):
    ollama.add_model("myuser/mario:v1", system="You are Mario from Super Mario Bros.")

    response = admin_client.get("/models/myuser/mario:v1/")

    assert response.status_code == 200
    assert '<pre data-field="system">You are Mario from Super Mario Bros.</pre>' in response.content.decode()


def test_it_escapes_what_ollama_says_about_a_model(admin_client, ollama):
    ollama.add_model("evil:latest", system="<script>alert(1)</script>", license="<b>bold</b>")

    page = admin_client.get("/models/evil:latest/").content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in page


def test_it_shows_embedding_capability_as_a_badge(admin_client, ollama):
    page = admin_client.get("/models/nomic-embed-text:latest/").content.decode()
    assert 'data-capability="embedding"' in page


def test_it_answers_404_for_a_model_ollama_does_not_have(admin_client, ollama):
    response = admin_client.get("/models/ghost:latest/")

    assert response.status_code == 404
    assert "Ollama has no model named “ghost:latest”" in response.content.decode()


def test_it_answers_404_for_an_invalid_name(admin_client, ollama):
    assert admin_client.get("/models/a%20b/").status_code == 404
    assert "/api/show" not in paths_requested(ollama)


def test_it_shows_an_error_when_ollama_is_unreachable_on_inspect(admin_client, settings, db):
    settings.OLLAMA_HOST = f"http://127.0.0.1:{free_port()}"

    response = admin_client.get("/models/llama3.2:latest/")

    assert response.status_code == 502
    assert "Ollama is unreachable at" in response.content.decode()


# -- copy ----------------------------------------------------------------------------------
def test_it_copies_a_model_to_a_new_name(admin_client, ollama):
    response = admin_client.post(
        "/models/copy/", {"source": "llama3.2:latest", "destination": "llama-backup"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/models/llama-backup:latest/"
    assert "llama-backup:latest" in ollama.models
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.model, entry.outcome, entry.detail) == (
        "copy",
        "llama3.2:latest",
        "ok",
        "→ llama-backup",
    )


def test_it_refuses_an_invalid_copy_destination(admin_client, ollama):
    response = admin_client.post(
        "/models/copy/", {"source": "llama3.2:latest", "destination": "../../x"}, follow=True
    )

    assert "is not a valid" in response.content.decode()
    assert "/api/copy" not in paths_requested(ollama)


def test_it_shows_the_copy_error_of_a_missing_source(admin_client, ollama):
    response = admin_client.post(
        "/models/copy/", {"source": "ghost:latest", "destination": "g2"}, follow=True
    )

    assert "not found" in response.content.decode()
    assert AuditEntry.objects.get().outcome == "error"


# -- create and push pages -----------------------------------------------------------------
def test_it_offers_installed_models_as_bases(admin_client, ollama):
    response = admin_client.get("/models/create/")

    page = response.content.decode()
    assert '<option value="llama3.2:latest" selected>' in page
    assert 'placeholder="You are Mario from Super Mario Bros."' in page
    assert 'placeholder="example"' in page


def test_it_refuses_a_bad_create_before_asking_ollama(admin_client, ollama):
    response = admin_client.post(
        "/models/create/", {"name": "a b", "base": "llama3.2:latest", "temperature": "9", "num_ctx": "12"}
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "cannot contain spaces" in page
    assert "less than or equal to 2" in page
    assert "greater than or equal to 256" in page
    assert "/api/create" not in paths_requested(ollama)


def test_it_refuses_a_base_that_is_not_installed(admin_client, ollama):
    response = admin_client.post("/models/create/", {"name": "x", "base": "ghost:latest"})
    assert response.status_code == 400
    assert "/api/create" not in paths_requested(ollama)


def test_it_refuses_a_bad_push_name(admin_client, ollama):
    response = admin_client.post("/models/push/", {"model": "a b"}, follow=True)
    assert "cannot contain spaces" in response.content.decode()
    assert "/api/push" not in paths_requested(ollama)


# -- embeddings ----------------------------------------------------------------------------
def test_it_offers_only_embedding_models(admin_client, ollama):
    response = admin_client.get("/models/embed/")
    assert response.context["models"] == ["nomic-embed-text:latest"]


def test_it_embeds_a_text_and_shows_the_vector(admin_client, ollama):
    response = admin_client.post(
        "/models/embed/",
        {"model": "nomic-embed-text:latest", "text": "The sky is blue."},
        **htmx_target("embed-panel"),
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert '<dd data-field="dimensions">768</dd>' in page
    values = page.split('<pre data-field="values">')[1].split("</pre>")[0].split(", ")
    assert len(values) == 8 and all(float(value) for value in values)
    seconds = page.split('<dd data-field="seconds">')[1].split(" s</dd>")[0]
    assert float(seconds) > 0


def test_it_refuses_embedding_with_a_model_that_cannot(admin_client, ollama):
    response = admin_client.post("/models/embed/", {"model": "llama3.2:latest", "text": "x"})
    assert "Select a valid choice" in response.content.decode()
    assert "/api/embed" not in paths_requested(ollama)


def test_it_explains_when_no_model_can_embed(admin_client, ollama):
    del ollama.models["nomic-embed-text:latest"]
    page = admin_client.get("/models/embed/").content.decode()
    assert "No installed model can embed." in page


# -- the activity log ----------------------------------------------------------------------
def test_it_shows_the_latest_twenty_audit_entries(admin_client, ollama, admin_user):
    for number in range(25):
        AuditEntry.objects.create(user=admin_user, action="delete", model=f"m{number}", outcome="ok")

    response = admin_client.get("/models/", **htmx_target("activity"))

    page = response.content.decode()
    assert "<html" not in page
    assert page.count('<td data-label="Model">m') == 20
    assert page.index(">m24<") < page.index(">m23<")
    assert ">m4<" not in page


def test_it_shows_finished_operations_in_the_history(admin_client, ollama, admin_user):
    from django.utils import timezone

    started = timezone.now()
    Operation.objects.create(
        kind="pull",
        model="ghost",
        user=admin_user,
        status="failed",
        error="pull model manifest: file does not exist",
        finished_at=started,
    )

    page = admin_client.get("/models/").content.decode()

    assert "pull model manifest: file does not exist" in page
    assert "badge-danger" in page


def test_it_lists_a_new_model_in_the_chat_picker_at_once(admin_client, ollama, settings):
    settings.OLLAMA_MODELS_TTL = 600  # the picker's list is cached: the copy must refresh it
    assert "llama-backup" not in admin_client.get("/").content.decode()
    admin_client.post("/models/copy/", {"source": "llama3.2:latest", "destination": "llama-backup"})
    assert 'value="llama-backup:latest"' in admin_client.get("/").content.decode()
    ollama.models.pop("llama-backup:latest")  # changed behind the app's back: the cache holds
    assert 'value="llama-backup:latest"' in admin_client.get("/").content.decode()
