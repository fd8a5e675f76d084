"""The servers page: add, edit, disable, delete with confirmation, test the connection."""

from __future__ import annotations

from models_admin.models import AuditEntry, OllamaServer
from webui import fleet


def test_it_lists_the_servers_of_the_environment_with_their_state(admin_client, pair):
    page = admin_client.get("/models/servers/").content.decode()

    assert page.count('data-source="settings"') == 2
    assert page.count('data-status="up"') == 2 and "0.12.6" in page
    assert "/models/servers/1/" not in page  # environment servers are not edited here


def test_it_adds_a_server_that_then_takes_chats(admin_client, double, second_double, settings, admin_user):
    settings.OLLAMA_HOST, settings.OLLAMA_HOSTS = double.url, []
    second_double.add_model("phi4:latest")

    response = admin_client.post(
        "/models/servers/add/",
        {
            "name": "gpu-2",
            "base_url": second_double.url.removeprefix("http://"),
            "enabled": "on",
            "headers_text": "Authorization: Bearer s3cret\nX-Team: a",
        },
    )

    assert response.status_code == 302 and response["Location"] == "/models/servers/"
    server = OllamaServer.objects.get()
    assert (server.name, server.base_url, server.created_by) == ("gpu-2", second_double.url, admin_user)
    assert server.headers == {"Authorization": "Bearer s3cret", "X-Team": "a"}
    assert [entry.detail for entry in AuditEntry.objects.all()] == [f"added {second_double.url}"]
    page = admin_client.get("/models/servers/").content.decode()
    assert "gpu-2" in page and "s3cret" not in page  # header values never shown
    assert 'value="phi4:latest"' in admin_client.get("/").content.decode()  # the picker has its models
    tags = [entry for entry in second_double.requests if entry["path"] == "/api/tags"]
    assert tags[-1]["headers"].get("authorization") == "Bearer s3cret"


def test_it_refuses_bad_or_duplicate_servers(admin_client, double, settings):
    settings.OLLAMA_HOST, settings.OLLAMA_HOSTS = double.url, []
    OllamaServer.objects.create(name="gpu-2", base_url="http://10.0.0.7:11434")

    def errors(**data) -> str:
        response = admin_client.post("/models/servers/add/", {"name": "x", "base_url": "10.0.0.9", **data})
        assert response.status_code == 400
        return response.content.decode()

    assert "Enter an address" in errors(base_url="not a url")
    assert "http or https" in errors(base_url="ftp://example")
    assert "already in the fleet" in errors(base_url="10.0.0.7:11434")
    assert "already in the fleet (from the environment)" in errors(base_url=double.url)
    assert "already exists" in errors(name="gpu-2")
    assert "Choose another name" in errors(name="*")
    assert "not a valid header name" in errors(headers_text="Bad Header: x")
    assert OllamaServer.objects.count() == 1


def test_it_edits_a_server_keeping_its_headers_unless_replaced(admin_client, double, settings):
    settings.OLLAMA_HOST, settings.OLLAMA_HOSTS = double.url, []
    server = OllamaServer.objects.create(
        name="gpu-2", base_url="http://10.0.0.7:11434", headers={"X-Key": "k"}
    )

    form = admin_client.get(f"/models/servers/{server.pk}/").content.decode()
    assert "Saved: X-Key (values hidden)" in form and ">k<" not in form

    admin_client.post(f"/models/servers/{server.pk}/", {"name": "gpu-3", "base_url": "10.0.0.8"})
    server.refresh_from_db()
    assert (server.name, server.base_url, server.enabled, server.headers) == (
        "gpu-3",
        "http://10.0.0.8:11434",
        False,
        {"X-Key": "k"},
    )
    admin_client.post(
        f"/models/servers/{server.pk}/", {"name": "gpu-3", "base_url": "10.0.0.8", "clear_headers": "on"}
    )
    server.refresh_from_db()
    assert server.headers == {}


def test_it_disables_and_enables_a_server(admin_client, double, second_double, settings):
    settings.OLLAMA_HOST, settings.OLLAMA_HOSTS = double.url, []
    server = OllamaServer.objects.create(name="gpu-2", base_url=second_double.url)
    assert [listed.name for listed in fleet.servers_sync()] == [
        fleet.server_name_from_url(double.url),
        "gpu-2",
    ]

    response = admin_client.post(f"/models/servers/{server.pk}/toggle/", follow=True)

    assert "Disabled gpu-2" in response.content.decode()
    assert [listed.name for listed in fleet.servers_sync()] == [fleet.server_name_from_url(double.url)]
    assert 'data-status="disabled"' in response.content.decode()
    admin_client.post(f"/models/servers/{server.pk}/toggle/")
    assert len(fleet.servers_sync()) == 2


def test_it_deletes_a_server_after_a_confirmation_naming_it(admin_client, double, settings):
    settings.OLLAMA_HOST, settings.OLLAMA_HOSTS = double.url, []
    server = OllamaServer.objects.create(name="gpu-2", base_url="http://10.0.0.7:11434")

    confirm = admin_client.get(f"/models/servers/{server.pk}/delete/").content.decode()
    assert "Remove gpu-2 from the fleet?" in confirm and 'name="confirm" value="1"' in confirm
    admin_client.post(f"/models/servers/{server.pk}/delete/")  # no confirmation: nothing happens
    assert OllamaServer.objects.exists()

    response = admin_client.post(f"/models/servers/{server.pk}/delete/", {"confirm": "1"}, follow=True)

    assert "Removed gpu-2 from the fleet." in response.content.decode()
    assert not OllamaServer.objects.exists()
    assert AuditEntry.objects.get(action="server").detail == "deleted"
    assert admin_client.get(f"/models/servers/{server.pk}/").status_code == 404


def test_it_tests_the_connection_with_version_and_latency_or_the_error(admin_client, pair, dead_address):
    answer = admin_client.post("/models/servers/test/", {"server": "b"}, HTTP_HX_REQUEST="true")
    assert "b answers: Ollama 0.12.6 in" in answer.content.decode() and " ms." in answer.content.decode()

    typed = admin_client.post(
        "/models/servers/add/", {"name": "new", "base_url": dead_address, "test": "1"}
    ).content.decode()
    assert "new does not answer: cannot connect to" in typed
    assert not OllamaServer.objects.exists()  # testing does not save
    unknown = admin_client.post("/models/servers/test/", {"server": "nope"}, follow=True)
    assert "There is no server named “nope”." in unknown.content.decode()
