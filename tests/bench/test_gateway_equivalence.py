"""The gateway's fast paths (found by `make bench`) answer exactly as the official client does.

`Gateway.chat_deltas` and `Gateway.chat` read plain-HTTP Ollama on sockets of their own
(webui/ollama.py, `_NDJSONResponse`) instead of through httpx and pydantic per token; these
tests hold them to the official client's request bodies, texts, statistics and errors, and to
the connection handling the generation relies on (Stop closes the request, kept-alive
connections survive a restarted server, proxies from the environment go through httpx).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import free_port
from webui.ollama import Gateway, OllamaError

CHAT = [{"role": "user", "content": "Hello"}]


@pytest.fixture
async def gateway(double):
    gateway = Gateway(double.url)
    assert gateway._direct is not None  # the fast path is the one under test
    yield gateway
    await gateway.close()


async def outcome(stream) -> tuple[list, OllamaError | None]:
    parts = []
    try:
        async for part in stream:
            parts.append(part)
    except OllamaError as error:
        return parts, error
    return parts, None


def same_error(official: OllamaError | None, ours: OllamaError | None) -> None:
    assert (official is None) == (ours is None)
    if official is not None:
        assert (ours.kind, ours.status, ours.message) == (official.kind, official.status, official.message)


@pytest.mark.parametrize(
    "fault",
    [
        {},
        {"fail_status": 404},
        {"fail_status": 500},
        {"fail_status": 503},
        {"error_after": 3},
        {"drop_after": 3},
    ],
)
async def test_it_streams_the_official_clients_text_and_errors(gateway, double, fault):
    double.configure(reply="Hi there, friend. How are you today?", **fault)
    model = "no-such-model" if fault.get("fail_status") == 404 else "llama3.2"

    chunks, official = await outcome(gateway.chat_stream(model=model, messages=CHAT))
    deltas, ours = await outcome(gateway.chat_deltas(model=model, messages=CHAT))

    assert "".join(delta.content for delta in deltas) == "".join(chunk.message.content for chunk in chunks)
    same_error(official, ours)
    if official is None:
        assert deltas[-1].final.eval_count == chunks[-1].eval_count
        assert deltas[-1].final.done_reason == chunks[-1].done_reason == "stop"


async def test_it_sends_the_official_clients_request_body(gateway, double):
    request = {
        "model": "qwen3",
        "messages": CHAT,
        "options": {"temperature": 0},
        "keep_alive": "5m",
        "think": True,
    }

    chunks, _ = await outcome(gateway.chat_stream(**request))
    deltas, _ = await outcome(gateway.chat_deltas(**request))

    assert double.requests[-1]["body"] == double.requests[-2]["body"]
    assert "".join(delta.thinking for delta in deltas) == "".join(
        chunk.message.thinking or "" for chunk in chunks
    )


@pytest.mark.parametrize("fault", [{}, {"fail_status": 404}, {"fail_status": 500}, {"fail_status": 503}])
async def test_it_answers_a_chat_at_once_as_the_official_client(gateway, double, fault):
    double.configure(reply="Short answer.", **fault)
    request = {"model": "no-such-model" if fault else "llama3.2", "messages": CHAT, "think": False}
    official = ours = None
    try:
        expected = await gateway._call(
            gateway.client.chat(stream=False, options={"num_predict": 32}, **request)
        )
    except OllamaError as error:
        official = error
    try:
        answer = await gateway.chat(options={"num_predict": 32}, **request)
    except OllamaError as error:
        ours = error

    same_error(official, ours)
    if official is None:
        assert answer.message.content == expected.message.content == "Short answer."
        assert answer.eval_count == expected.eval_count
    assert double.requests[-1]["body"] == double.requests[-2]["body"]


async def test_it_keeps_one_connection_for_replies_one_after_another(gateway):
    for tokens in (20_000, 3, 20_000):  # a large reply pauses and resumes reading the socket
        deltas, error = await outcome(
            gateway.chat_deltas(
                model="llama3.2", messages=[{"role": "user", "content": f"go [[tokens={tokens}]]"}]
            )
        )
        assert error is None and deltas[-1].final.eval_count == tokens
    assert len(gateway._idle) == 1


async def test_it_streams_many_replies_at_once(gateway, double):
    double.configure(tokens_per_second=200, reply_tokens=50)

    outcomes = await asyncio.gather(
        *(outcome(gateway.chat_deltas(model="llama3.2", messages=CHAT)) for _ in range(40))
    )

    assert all(error is None and deltas[-1].final.eval_count == 50 for deltas, error in outcomes)
    assert len(gateway._idle) == Gateway.IDLE_MAX


async def test_it_closes_the_request_when_the_reader_stops_and_goes_on(gateway, double):
    double.configure(tokens_per_second=100, reply_tokens=300)
    stream = gateway.chat_deltas(model="llama3.2", messages=CHAT)
    async for _delta in stream:
        break
    await stream.aclose()

    assert (await double.await_close("/api/chat"))["closed_early"]
    double.configure(tokens_per_second=None, reply_tokens=5)
    deltas, error = await outcome(gateway.chat_deltas(model="llama3.2", messages=CHAT))
    assert error is None and deltas[-1].final.eval_count == 5


async def test_it_closes_the_request_when_its_task_is_cancelled(gateway, double):
    double.configure(tokens_per_second=20, reply_tokens=500)

    async def read() -> None:
        async for _delta in gateway.chat_deltas(model="llama3.2", messages=CHAT):
            pass

    task = asyncio.ensure_future(read())
    await asyncio.sleep(0.5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert task.cancelled()  # a Stop arriving with a token is not lost
    assert (await double.await_close("/api/chat"))["closed_early"]


async def test_it_reconnects_when_the_kept_connection_was_closed(gateway, double):
    assert (await outcome(gateway.chat_deltas(model="llama3.2", messages=CHAT)))[1] is None
    double.restart()

    deltas, error = await outcome(gateway.chat_deltas(model="llama3.2", messages=CHAT))

    assert error is None and deltas[-1].final


async def test_it_gives_up_on_a_stalled_reply(double):
    double.configure(stall_after=2)
    gateway = Gateway(double.url, timeout=0.5)
    try:
        deltas, error = await outcome(gateway.chat_deltas(model="llama3.2", messages=CHAT))
    finally:
        await gateway.close()

    assert error.kind == "timeout" and "".join(delta.content for delta in deltas)


async def test_it_reports_an_unreachable_ollama():
    gateway = Gateway(f"http://127.0.0.1:{free_port()}")
    try:
        _, error = await outcome(gateway.chat_deltas(model="llama3.2", messages=CHAT))
    finally:
        await gateway.close()

    assert error.kind == "unreachable" and error.status is None


async def test_it_leaves_proxied_requests_to_httpx(double, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
    proxied = Gateway(double.url)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    bypassed = Gateway(double.url)
    try:
        assert proxied._direct is None and bypassed._direct is not None
    finally:
        await proxied.close()
        await bypassed.close()
