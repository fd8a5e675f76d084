"""Check the Ollama double against the official client and the protocol's traps.

Every endpoint is driven through ``ollama.Client``/``ollama.AsyncClient`` so the double cannot drift
from what real clients accept; raw httpx covers what the client hides (framing, status codes,
plain-text errors, faults).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.ollama_double import OllamaDouble, dumps, parse_go_duration, parse_name, tokenize

ROOT = Path(__file__).resolve().parent.parent
HEX64 = re.compile(r"^[0-9a-f]{64}$")
METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)
USER_HI = [{"role": "user", "content": "hi"}]


# The suite's conftest has autouse fixtures that need Django settings; these tests need neither Django
# nor a database (and must also run with `-p no:django`), so they shadow them by name.
@pytest.fixture(autouse=True)
def _fast_passwords() -> None:
    """Skip the suite-wide password-hasher tweak."""


@pytest.fixture(autouse=True)
def _own_channel_prefix() -> None:
    """Skip the suite-wide channel-layer prefix set-up."""


@pytest.fixture
def double() -> Iterator[OllamaDouble]:
    """Start a private double on a free port (pull/push kept short so the file stays fast)."""
    d = OllamaDouble().start()
    d.configure(pull_seconds=0.02)
    yield d
    d.stop()


@pytest.fixture
def client(double: OllamaDouble) -> Iterator[ollama.Client]:
    c = ollama.Client(host=double.url)
    yield c
    c.close()


@pytest.fixture
def http(double: OllamaDouble) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=double.url, timeout=5) as c:
        yield c


def ndjson(response: httpx.Response) -> list[dict]:
    """Parse a streamed body strictly: one object per line, no blank lines."""
    text = response.text
    assert text.endswith("\n")
    return [json.loads(line) for line in text[:-1].split("\n")]


# --- plain endpoints -------------------------------------------------------------------------


def test_it_answers_health_check_and_version(http: httpx.Client) -> None:
    root = http.get("/")
    assert (root.status_code, root.text) == (200, "Ollama is running")
    assert root.headers["content-type"] == "text/plain; charset=utf-8"
    head = http.head("/")
    assert head.status_code == 200 and head.content == b""
    version = http.get("/api/version")
    assert version.json() == {"version": "0.12.6"}
    assert version.headers["content-type"] == "application/json; charset=utf-8"


def test_it_lists_seed_models_newest_first(client: ollama.Client, http: httpx.Client) -> None:
    listed = client.list().models
    assert [m.model for m in listed] == [
        "llama3.2:latest",
        "llava:7b",
        "qwen3:0.6b",
        "nomic-embed-text:latest",
    ]
    assert all(HEX64.match(m.digest) for m in listed)
    assert listed[0].details.parameter_size == "3.2B" and listed[0].details.quantization_level == "Q4_K_M"
    raw = http.get("/api/tags").json()["models"]
    assert all(m["name"] == m["model"] for m in raw)
    caps = {m["name"]: m["capabilities"] for m in raw}
    assert caps["qwen3:0.6b"] == ["completion", "tools", "thinking"]
    assert caps["nomic-embed-text:latest"] == ["embedding"]
    assert caps["llava:7b"] == ["completion", "vision"]


def test_it_shows_model_info_parameters_and_canonical_not_found(client: ollama.Client) -> None:
    shown = client.show("Llama3.2")
    assert shown.modelinfo["llama.context_length"] == 131072
    assert shown.modelinfo["llama.embedding_length"] == 3072
    assert shown.capabilities == ["completion", "tools"]
    assert shown.parameters.splitlines()[0] == "stop" + " " * 27 + '"<|start_header_id|>"'
    assert shown.template and shown.license.startswith("LLAMA 3.2") and "FROM " in shown.modelfile
    with pytest.raises(ollama.ResponseError) as err:
        client.show("nope")
    assert (err.value.status_code, err.value.error) == (404, "model 'nope:latest' not found")


def test_it_reports_loaded_models_and_unloads_with_keep_alive_zero(client: ollama.Client) -> None:
    assert client.ps().models == []
    loaded = client.chat(model="llama3.2", messages=[])
    assert (loaded.done, loaded.done_reason, loaded.message.content) == (True, "load", "")
    running = client.ps().models
    assert [m.model for m in running] == ["llama3.2:latest"]
    assert running[0].size_vram == running[0].size and running[0].context_length == 4096
    assert running[0].expires_at is not None
    unloaded = client.generate(model="llama3.2", prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert client.ps().models == []


# --- chat and generate -----------------------------------------------------------------------


def test_it_streams_chat_deltas_and_a_final_chunk_with_all_metrics(client: ollama.Client) -> None:
    parts = list(client.chat(model="llama3.2", messages=USER_HI, stream=True))
    assert all(p.message.role == "assistant" for p in parts)
    assert [p.done for p in parts] == [False] * 30 + [True]
    final = parts[-1]
    assert final.done_reason == "stop" and final.message.content == ""
    assert all(getattr(final, key) > 0 for key in METRICS)
    assert final.eval_count == 30
    whole = client.chat(model="llama3.2", messages=USER_HI)
    assert whole.message.content == "".join(p.message.content for p in parts)
    assert whole.eval_count == 30 and whole.done_reason == "stop"


def test_it_echoes_the_model_string_and_honours_the_token_marker(client: ollama.Client) -> None:
    reply = client.chat(model="LLAMA3.2", messages=[{"role": "user", "content": "x [[tokens=7]]"}])
    assert reply.model == "LLAMA3.2"
    assert reply.eval_count == 7 and len(tokenize(reply.message.content)) == 7


def test_it_streams_thinking_first_for_thinking_models(client: ollama.Client) -> None:
    parts = list(client.chat(model="qwen3:0.6b", messages=USER_HI, stream=True))
    thinking = [p.message.thinking for p in parts if p.message.thinking]
    first_content = next(i for i, p in enumerate(parts) if p.message.content)
    assert thinking and all(p.message.thinking for p in parts[: len(thinking)])
    assert first_content == len(thinking)
    assert parts[-1].eval_count == len(thinking) + 30
    whole = client.chat(model="qwen3:0.6b", messages=USER_HI, think=True)
    assert whole.message.thinking == "".join(thinking)
    assert client.chat(model="qwen3:0.6b", messages=USER_HI, think=False).message.thinking is None
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="llama3.2", messages=USER_HI, think=True)
    assert (err.value.status_code, err.value.error) == (400, '"llama3.2" does not support thinking')


def test_it_stops_at_num_predict_and_ignores_unknown_options(client: ollama.Client) -> None:
    reply = client.chat(model="llama3.2", messages=USER_HI, options={"num_predict": 5, "max_tokens": 2})
    assert (reply.done_reason, reply.eval_count) == ("length", 5)


def test_it_generates_streamed_and_buffered(client: ollama.Client) -> None:
    parts = list(client.generate(model="llama3.2", prompt="Why is the sky blue?", stream=True))
    assert parts[-1].done and parts[-1].done_reason == "stop" and parts[-1].context
    whole = client.generate(model="llama3.2", prompt="Why is the sky blue?")
    assert whole.response == "".join(p.response for p in parts)
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model="nomic-embed-text", prompt="x")
    assert (err.value.status_code, err.value.error) == (400, '"nomic-embed-text" does not support generate')


def test_it_rejects_bad_chat_requests_before_streaming(http: httpx.Client) -> None:
    cases = [
        ({"messages": USER_HI}, 400, "model is required"),
        ({"model": "nope", "messages": USER_HI}, 404, "model 'nope' not found"),
        ({"model": "bad name!", "messages": USER_HI}, 400, "invalid model name"),
        ({"model": "nomic-embed-text", "messages": USER_HI}, 400, '"nomic-embed-text" does not support chat'),
        (
            {"model": "llama3.2", "messages": USER_HI, "keep_alive": "10"},
            400,
            'time: missing unit in duration "10"',
        ),
        ({"model": "llama3.2", "messages": "hi"}, 400, None),
    ]
    for body, status, message in cases:
        r = http.post("/api/chat", json=body)
        assert r.status_code == status, body
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        if message:
            assert r.json() == {"error": message}
    assert http.post("/api/generate", json={"prompt": "x"}).json() == {"error": "model '' not found"}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    r = http.post("/api/chat", json={"model": "llava:7b", "messages": USER_HI, "tools": tools})
    assert r.json() == {"error": "registry.ollama.ai/library/llava:7b does not support tools"}


def test_it_streams_by_default_for_raw_http(http: httpx.Client, double: OllamaDouble) -> None:
    double.configure(reply="<b>café\u2028 & done</b>")
    r = http.post("/api/chat", json={"model": "llama3.2", "messages": USER_HI})
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["transfer-encoding"] == "chunked" and "content-length" not in r.headers
    assert "\\u003cb\\u003e" in r.text and "\\u00e9" in r.text and "\\u2028" in r.text
    assert r.text.isascii() and "\n\n" not in r.text and ": " not in r.text
    lines = ndjson(r)
    assert "".join(line["message"]["content"] for line in lines) == "<b>café\u2028 & done</b>"
    assert lines[-1]["done"] is True and all(key in lines[-1] for key in METRICS)
    one = http.post("/api/chat", json={"model": "llama3.2", "messages": USER_HI, "stream": False})
    assert one.headers["content-type"] == "application/json; charset=utf-8"
    assert one.json()["message"]["content"] == "<b>café\u2028 & done</b>"


def test_it_answers_plain_text_404_405_and_json_400s(http: httpx.Client) -> None:
    missing = http.get("/api/nope")
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert missing.headers["content-type"].startswith("text/plain")
    wrong = http.get("/api/chat")
    assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")
    for path in ("/api/chat", "/api/show", "/api/pull", "/api/embed", "/api/copy"):
        assert http.post(path).json() == {"error": "missing request body"}
    assert http.request("DELETE", "/api/delete").json() == {"error": "missing request body"}
    bad = http.post("/api/chat", content=b"xyz")
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid character 'x' looking for beginning of value"}
    assert http.post("/api/chat", content=b'{"model":').json() == {"error": "unexpected EOF"}


# --- pull / push / create / copy / delete ----------------------------------------------------


def test_it_pulls_a_catalogue_model_which_then_appears_in_tags(client: ollama.Client) -> None:
    statuses = [p for p in client.pull("mistral", stream=True)]
    names = [p.status for p in statuses]
    assert names[0] == "pulling manifest" and names[-3:] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    layer = [p for p in statuses if p.status.startswith("pulling ") and p.digest]
    assert layer[0].status == "pulling " + layer[0].digest[7:19] and layer[0].completed is None
    assert layer[-1].completed == layer[-1].total
    assert "mistral:latest" == client.list().models[0].model
    assert client.pull("llama3.2:1b").status == "success"


def test_it_reports_unknown_pulls_as_an_error_line_or_http_500(
    client: ollama.Client, http: httpx.Client
) -> None:
    seen = []
    with pytest.raises(ollama.ResponseError) as err:
        for p in client.pull("no-such-model", stream=True):
            seen.append(p.status)
    assert seen == ["pulling manifest"]
    assert (err.value.status_code, err.value.error) == (-1, "pull model manifest: file does not exist")
    with pytest.raises(ollama.ResponseError) as err:
        client.pull("no-such-model")
    assert (err.value.status_code, err.value.error) == (500, "pull model manifest: file does not exist")
    assert http.post("/api/pull", json={"model": "bad name!"}).json() == {"error": "invalid model name"}


def test_it_fails_a_pull_after_n_progress_lines(http: httpx.Client, double: OllamaDouble) -> None:
    double.configure(pull_fail_after=3)
    lines = ndjson(http.post("/api/pull", json={"model": "gemma3"}))
    assert len(lines) == 4 and lines[-1] == {"error": "max retries exceeded: unexpected EOF"}
    assert "gemma3:latest" not in double.models


def test_it_pushes_and_reports_a_missing_local_model(client: ollama.Client) -> None:
    statuses = [p.status for p in client.push("llama3.2", stream=True)]
    assert statuses[0] == "retrieving manifest" and statuses[-2:] == ["pushing manifest", "success"]
    assert any(s.startswith("pushing ") and len(s) == 20 for s in statuses)
    seen = []
    with pytest.raises(ollama.ResponseError) as err:
        for p in client.push("me/missing", stream=True):
            seen.append(p.status)
    assert seen == ["retrieving manifest", "couldn't retrieve manifest"]
    assert err.value.status_code == -1 and "no such file or directory" in err.value.error


def test_it_creates_from_an_existing_model_and_shows_the_result(
    client: ollama.Client, http: httpx.Client
) -> None:
    statuses = [
        p.status
        for p in client.create(
            model="me/helper:v1",
            from_="llama3.2",
            system="You are terse.",
            parameters={"num_ctx": 8192, "temperature": 0.2},
            stream=True,
        )
    ]
    assert statuses[0].startswith("using existing layer sha256:")
    assert any(s.startswith("creating new layer sha256:") for s in statuses)
    assert statuses[-2:] == ["writing manifest", "success"]
    shown = http.post("/api/show", json={"model": "me/helper:v1"}).json()
    assert shown["system"] == "You are terse."
    assert "num_ctx                        8192" in shown["parameters"]
    assert "temperature                    0.2" in shown["parameters"]
    assert "me/helper:v1" in [m.model for m in client.list().models]
    r = http.post("/api/create", json={"model": "x", "modelfile": "FROM llama3.2"})
    assert (r.status_code, r.json()) == (400, {"error": "neither 'from' or 'files' was specified"})


def test_it_copies_and_deletes_with_empty_bodies(client: ollama.Client, http: httpx.Client) -> None:
    copied = http.post("/api/copy", json={"source": "llama3.2", "destination": "backup"})
    assert (copied.status_code, copied.content) == (200, b"")
    assert client.show("backup:latest").modelinfo
    gone = http.request("DELETE", "/api/delete", json={"model": "backup"})
    assert (gone.status_code, gone.content) == (200, b"")
    again = http.request("DELETE", "/api/delete", json={"model": "backup"})
    assert (again.status_code, again.json()) == (404, {"error": "model 'backup' not found"})
    assert http.request("DELETE", "/api/delete", json={"model": ""}).json() == {"error": "model is required"}
    missing = http.post("/api/copy", json={"source": "nope", "destination": "x"})
    assert (missing.status_code, missing.json()) == (404, {"error": 'model "nope" not found'})
    assert client.copy("llava:7b", "llava-copy").status == "success"
    assert client.delete("llava-copy").status == "success"
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("llava-copy")
    assert err.value.status_code == 404


def test_it_embeds_deterministic_unit_vectors(client: ollama.Client) -> None:
    result = client.embed(model="nomic-embed-text", input=["hello world", "hello there", "tax law"])
    vectors = result.embeddings
    assert [len(v) for v in vectors] == [768, 768, 768]
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-9 for v in vectors)
    assert client.embed(model="nomic-embed-text", input="hello world").embeddings[0] == vectors[0]

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
    assert len(client.embed(model="llama3.2", input="x").embeddings[0]) == 3072
    assert len(client.embeddings(model="nomic-embed-text", prompt="hi").embedding) == 768
    with pytest.raises(ollama.ResponseError) as err:
        client.embed(model="all-minilm", input="x")
    assert (err.value.status_code, err.value.error) == (
        404,
        'model "all-minilm" not found, try pulling it first',
    )


@pytest.mark.asyncio
async def test_it_serves_the_async_client(double: OllamaDouble) -> None:
    client = ollama.AsyncClient(host=double.url)
    try:
        assert (await client.list()).models[0].model == "llama3.2:latest"
        chunks = [c async for c in await client.chat(model="llama3.2", messages=USER_HI, stream=True)]
        assert chunks[-1].done and chunks[-1].eval_count == 30
        assert (await client.generate(model="llama3.2", prompt="hi")).done_reason == "stop"
        assert (await client.pull("phi4")).status == "success"
        assert (await client.embed(model="nomic-embed-text", input="x")).embeddings
    finally:
        await client.close()


# --- faults ----------------------------------------------------------------------------------


def test_it_ends_a_stream_with_an_error_line_after_n_tokens(
    client: ollama.Client, http: httpx.Client, double
) -> None:
    double.configure(error_after=3, error_message="boom")
    lines = ndjson(http.post("/api/chat", json={"model": "llama3.2", "messages": USER_HI}))
    assert len(lines) == 4 and lines[-1] == {"error": "boom"}
    assert not any(line.get("done") for line in lines)
    received = []
    with pytest.raises(ollama.ResponseError) as err:
        for part in client.chat(model="llama3.2", messages=USER_HI, stream=True):
            received.append(part)
    assert len(received) == 3 and (err.value.status_code, err.value.error) == (-1, "boom")
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="llama3.2", messages=USER_HI)
    assert (err.value.status_code, err.value.error) == (500, "boom")


def test_it_drops_the_connection_after_n_tokens(http: httpx.Client, double: OllamaDouble) -> None:
    double.configure(drop_after=2)
    received = []
    with pytest.raises(httpx.RemoteProtocolError):
        with http.stream("POST", "/api/chat", json={"model": "llama3.2", "messages": USER_HI}) as r:
            received.extend(r.iter_lines())
    assert len(received) == 2
    entry = double.wait_for_request("/api/chat")
    assert entry["dropped"] and not entry["finished"] and not entry["closed_early"]


def test_it_stalls_until_the_client_gives_up(double: OllamaDouble) -> None:
    double.configure(stall_after=2)
    received = []
    with httpx.Client(base_url=double.url, timeout=httpx.Timeout(5, read=0.2)) as slow:
        with pytest.raises(httpx.ReadTimeout):
            with slow.stream("POST", "/api/chat", json={"model": "llama3.2", "messages": USER_HI}) as r:
                received.extend(r.iter_lines())
    assert len(received) == 2
    entry = double.wait_for_close("/api/chat")
    assert entry["closed_early"] and not entry["finished"]
    assert double.in_flight == 0


def test_it_answers_fail_status_with_the_protocol_body(
    client: ollama.Client, http: httpx.Client, double
) -> None:
    double.configure(fail_status=503)
    r = http.post("/api/chat", json={"model": "llama3.2", "messages": USER_HI})
    assert r.status_code == 503
    assert r.json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}
    with pytest.raises(ollama.ResponseError) as err:
        list(client.generate(model="llama3.2", prompt="x", stream=True))
    assert err.value.status_code == 503
    assert client.pull("llama3.2").status == "success"  # pull is outside the default fail_paths
    double.configure(fail_status=500, fail_paths=["/api/pull"])
    with pytest.raises(ollama.ResponseError) as err:
        client.pull("llama3.2")
    assert err.value.status_code == 500
    double.configure(fail_status=None)
    assert client.chat(model="llama3.2", messages=USER_HI).done


def test_it_sees_a_client_abandon_a_paced_stream(http: httpx.Client, double: OllamaDouble) -> None:
    double.configure(tokens_per_second=50, reply_tokens=500)
    with http.stream("POST", "/api/chat", json={"model": "llama3.2", "messages": USER_HI}) as r:
        lines = r.iter_lines()
        next(lines), next(lines)
        assert double.in_flight == 1
    entry = double.wait_for_close("/api/chat", timeout=2)
    assert entry["closed_early"] and entry["body"]["model"] == "llama3.2"
    assert double.in_flight == 0


@pytest.mark.asyncio
async def test_it_lets_async_tests_await_the_close(double: OllamaDouble) -> None:
    double.configure(tokens_per_second=100, reply_tokens=1000)
    client = ollama.AsyncClient(host=double.url)
    stream = await client.chat(model="llama3.2", messages=USER_HI, stream=True)
    async for part in stream:
        assert part.message.content
        break
    await stream.aclose()
    entry = await double.await_close("/api/chat", timeout=2)
    assert entry["closed_early"]
    await client.close()


def test_it_paces_tokens_and_delays_the_first_one(http: httpx.Client, double: OllamaDouble) -> None:
    double.configure(tokens_per_second=100, reply_tokens=11, first_token_delay=0.1)
    started = time.perf_counter()
    lines = ndjson(http.post("/api/chat", json={"model": "llama3.2", "messages": USER_HI}))
    elapsed = time.perf_counter() - started
    assert 0.19 < elapsed < 1.5
    final = lines[-1]
    assert final["eval_count"] == 11 and 0.08e9 < final["eval_duration"] < 1e9
    assert final["load_duration"] >= 0.1e9


def test_it_restarts_on_the_same_port_after_stop(double: OllamaDouble, client: ollama.Client) -> None:
    double.configure(stall_after=1)
    port = double.port
    with httpx.Client(base_url=double.url, timeout=5) as other:
        with other.stream("POST", "/api/chat", json={"model": "llama3.2", "messages": USER_HI}) as r:
            lines = r.iter_lines()
            next(lines)
            double.stop()
            with pytest.raises(httpx.TransportError):
                list(lines)
    with pytest.raises(ConnectionError):
        client.list()
    double.restart()
    assert double.port == port
    double.configure(stall_after=None)
    assert client.list().models and client.chat(model="llama3.2", messages=USER_HI).done


# --- the small pieces ------------------------------------------------------------------------


def test_it_parses_model_names_like_ollama() -> None:
    assert parse_name("llama3.2").display() == "llama3.2:latest"
    assert parse_name("registry.ollama.ai/library/llama3.2:latest").display() == "llama3.2:latest"
    assert parse_name("Me/Model:v1").display() == "Me/Model:v1"
    assert parse_name("hf.co/org/repo:Q4_K_M").display() == "hf.co/org/repo:Q4_K_M"
    assert parse_name("localhost:5000/ns/m").tag == "latest"
    assert parse_name("LLAMA3.2").key() == parse_name("llama3.2:latest").key()
    for bad in ("", "bad name", "a/b/c/d", "-x", "ns.x/model"):
        assert parse_name(bad) is None, bad
    assert parse_go_duration("1h30m") == 5400 and parse_go_duration("-1m") == -60
    with pytest.raises(ValueError, match="missing unit"):
        parse_go_duration("10")
    assert dumps({"a": "<&>é"}) == '{"a":"\\u003c\\u0026\\u003e\\u00e9"}'


def test_it_hands_out_log_entries_in_order(http: httpx.Client, double: OllamaDouble) -> None:
    http.post("/api/show", json={"model": "llama3.2"})
    http.post("/api/show", json={"model": "qwen3:0.6b"})
    assert double.wait_for_request("/api/show")["body"] == {"model": "llama3.2"}
    assert double.wait_for_request("/api/show")["body"] == {"model": "qwen3:0.6b"}
    with pytest.raises(TimeoutError):
        double.wait_for_request("/api/show", timeout=0.05)
    double.reset()
    assert double.requests == [] and "llama3.2:latest" in double.models


def test_it_runs_from_the_command_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.ollama_double", "--port", str(port), "--tokens-per-second", "1000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip().endswith(f"http://127.0.0.1:{port}")
        with ollama.Client(host=f"http://127.0.0.1:{port}") as cli:
            assert cli.chat(model="llama3.2", messages=USER_HI).eval_count == 30
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
        proc.stdout.close()


@pytest.mark.asyncio
async def test_it_does_not_block_the_callers_event_loop(double: OllamaDouble) -> None:
    double.configure(first_token_delay=0.2)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    client = ollama.AsyncClient(host=double.url)
    ticker = asyncio.create_task(tick())
    await client.chat(model="llama3.2", messages=USER_HI)
    ticker.cancel()
    await client.close()
    # 0.2 s of simulated loading leaves room for ~20 ticks; a blocked loop would get none.
    assert ticks >= 5
