"""The Ollama gateway against the double: every call, and every failure as one OllamaError kind."""

from __future__ import annotations

import time

import pytest

from tests.conftest import free_port
from webui.ollama import STREAM_ERROR, Gateway, OllamaError, parse_host

CHAT = [{"role": "user", "content": "Hello"}]


@pytest.fixture
async def gateway(double):
    gateway = Gateway(double.url)
    yield gateway
    await gateway.close()


async def collect(stream) -> list:
    return [part async for part in stream]


async def failure(awaitable) -> OllamaError:
    with pytest.raises(OllamaError) as caught:
        await awaitable
    return caught.value


# -- status --------------------------------------------------------------------------------
async def test_it_reads_the_version(gateway):
    assert await gateway.version() == "0.12.6"


async def test_it_reports_health(gateway, double):
    health = await gateway.health()

    assert health.reachable is True
    assert health.version == "0.12.6"
    assert health.host == double.url


async def test_it_lists_the_installed_models(gateway):
    names = [model.model for model in await gateway.tags()]

    assert "llama3.2:latest" in names
    assert "nomic-embed-text:latest" in names


async def test_it_shows_a_model(gateway):
    shown = await gateway.show("llama3.2")

    assert "completion" in shown.capabilities
    assert shown.modelinfo["general.architecture"] == "llama"


async def test_it_lists_loaded_models(gateway):
    assert await gateway.ps() == []

    await collect(gateway.chat_stream(model="llama3.2", messages=CHAT))

    assert [model.model for model in await gateway.ps()] == ["llama3.2:latest"]


# -- chat ----------------------------------------------------------------------------------
async def test_it_streams_a_chat_reply_with_statistics(gateway, double):
    double.configure(reply="Hi there, friend.")

    chunks = await collect(gateway.chat_stream(model="llama3.2", messages=CHAT, options={"temperature": 0}))

    final = chunks[-1]
    assert "".join(chunk.message.content for chunk in chunks) == "Hi there, friend."
    assert final.done is True
    assert final.done_reason == "stop"
    assert final.eval_count > 0
    assert final.eval_duration > 0
    assert final.prompt_eval_count > 0
    assert all(not chunk.done for chunk in chunks[:-1])
    assert double.requests[-1]["body"]["options"] == {"temperature": 0}


async def test_it_answers_a_chat_at_once(gateway, double):
    double.configure(reply="Short answer.")

    reply = await gateway.chat(model="llama3.2", messages=CHAT)

    assert reply.message.content == "Short answer."


async def test_it_reports_an_unknown_model_as_not_found(gateway):
    error = await failure(collect(gateway.chat_stream(model="no-such-model", messages=CHAT)))

    assert error.kind == "not_found"
    assert error.status == 404
    assert "not found" in error.message


async def test_it_reports_a_server_error_with_ollamas_message(gateway, double):
    double.configure(fail_status=500)

    error = await failure(collect(gateway.chat_stream(model="llama3.2", messages=CHAT)))

    assert error.kind == "http"
    assert error.status == 500
    assert error.message == "llama runner process has terminated: exit status 2"


async def test_it_reports_a_full_queue_as_busy(gateway, double):
    double.configure(fail_status=503)

    error = await failure(collect(gateway.chat_stream(model="llama3.2", messages=CHAT)))

    assert error.kind == "busy"
    assert error.status == 503
    assert "server busy" in error.message


async def test_it_reports_an_error_line_inside_a_stream(gateway, double):
    double.configure(error_after=3)
    chunks = []

    with pytest.raises(OllamaError) as caught:
        async for chunk in gateway.chat_stream(model="llama3.2", messages=CHAT):
            chunks.append(chunk)

    assert len(chunks) == 3
    assert caught.value.kind == "stream"
    assert caught.value.status == STREAM_ERROR
    assert "unexpected EOF" in caught.value.message


async def test_it_reports_a_connection_dropped_mid_reply(gateway, double):
    double.configure(drop_after=3)
    chunks = []

    with pytest.raises(OllamaError) as caught:
        async for chunk in gateway.chat_stream(model="llama3.2", messages=CHAT):
            chunks.append(chunk)

    assert len(chunks) == 3
    assert caught.value.kind == "dropped"
    assert caught.value.status is None


async def test_it_gives_up_on_a_stalled_reply(double):
    double.configure(stall_after=2)
    gateway = Gateway(double.url, timeout=0.5)
    chunks = []
    started = time.monotonic()

    try:
        with pytest.raises(OllamaError) as caught:
            async for chunk in gateway.chat_stream(model="llama3.2", messages=CHAT):
                chunks.append(chunk)
    finally:
        await gateway.close()

    assert len(chunks) == 2
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 3
    await double.await_close("/api/chat")


async def test_it_closes_the_request_when_the_reader_stops(gateway, double):
    double.configure(tokens_per_second=50, reply_tokens=500)
    stream = gateway.chat_stream(model="llama3.2", messages=CHAT)

    async for _chunk in stream:
        break
    await stream.aclose()

    await double.await_close("/api/chat")


async def test_it_reports_an_unreachable_ollama():
    gateway = Gateway(f"http://127.0.0.1:{free_port()}")
    try:
        listing = await failure(gateway.tags())
        streaming = await failure(collect(gateway.chat_stream(model="llama3.2", messages=CHAT)))
        health = await gateway.health()
    finally:
        await gateway.close()

    assert listing.kind == streaming.kind == "unreachable"
    assert listing.status is None
    assert health.reachable is False
    assert "unreachable" in listing.user_message


# -- model management ----------------------------------------------------------------------
async def test_it_streams_a_pull(gateway, double):
    double.configure(pull_seconds=0)

    progress = await collect(gateway.pull("llama3.2:1b"))

    assert progress[0].status == "pulling manifest"
    assert progress[-1].status == "success"
    assert any(update.total for update in progress)
    assert "llama3.2:1b" in [model.model for model in await gateway.tags()]


async def test_it_reports_an_unknown_model_in_a_pull_stream(gateway, double):
    double.configure(pull_seconds=0)
    progress = []

    with pytest.raises(OllamaError) as caught:
        async for update in gateway.pull("no-such-model"):
            progress.append(update)

    assert [update.status for update in progress] == ["pulling manifest"]
    assert caught.value.kind == "stream"
    assert caught.value.message == "pull model manifest: file does not exist"


async def test_it_creates_copies_and_deletes_models(gateway, double):
    double.configure(pull_seconds=0)

    created = await collect(gateway.create(model="brief", from_="llama3.2", system="Be brief."))
    await gateway.copy(source="brief", destination="brief-backup")
    names = [model.model for model in await gateway.tags()]
    await gateway.delete("brief-backup")
    after = [model.model for model in await gateway.tags()]

    assert created[-1].status == "success"
    assert "brief:latest" in names and "brief-backup:latest" in names
    assert "brief-backup:latest" not in after
    assert "Be brief." in (await gateway.show("brief")).modelfile  # ShowResponse has no `system`


async def test_it_reports_deleting_a_missing_model_as_not_found(gateway):
    error = await failure(gateway.delete("no-such-model"))

    assert error.kind == "not_found"
    assert error.status == 404


async def test_it_embeds_text(gateway):
    embedded = await gateway.embed(model="nomic-embed-text", input=["one", "two"])

    assert len(embedded.embeddings) == 2
    assert len(embedded.embeddings[0]) == 768


# -- host parsing (protocol section 6.1) ---------------------------------------------------
@pytest.mark.parametrize(
    ("host", "base_url"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        ("example.com", "http://example.com:11434"),
        (":56789", "http://127.0.0.1:56789"),
        ("example.com:56789", "http://example.com:56789"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("example.com:56789/path/", "http://example.com:56789/path"),
        ("[::1]", "http://[::1]:11434"),
    ],
)
def test_it_parses_hosts_like_the_official_client(host, base_url):
    assert parse_host(host) == base_url
