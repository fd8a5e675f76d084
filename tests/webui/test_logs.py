"""Structured logs: a request id per HTTP request, reply=<id> in generation logs, JSON lines."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from django.test import Client

from tests.conftest import ROOT
from webui import logs


class Collect(logging.Handler):
    """Keep formatted lines, through the project's filter and formatter."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.addFilter(logs.ContextFilter())
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_it_gives_each_request_an_id_and_answers_it(db):
    first, second = Client().get("/healthz"), Client().get("/healthz")

    assert len(first["X-Request-ID"]) == 32 and first["X-Request-ID"] != second["X-Request-ID"]


def test_it_keeps_the_proxys_request_id_when_it_is_sane(db):
    assert (
        Client().get("/healthz", HTTP_X_REQUEST_ID="abcdef0123456789")["X-Request-ID"] == "abcdef0123456789"
    )
    assert Client().get("/healthz", HTTP_X_REQUEST_ID="<script>")["X-Request-ID"] != "<script>"


def test_it_tags_the_log_lines_of_a_request_with_its_id(db, ollama, settings):
    settings.OLLAMA_HOST = "http://127.0.0.1:9"  # a failing health check logs a line
    handler = Collect(logs.PlainFormatter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        response = Client().get("/no-such-page/")
    finally:
        logger.removeHandler(handler)

    assert response.status_code == 404
    assert handler.lines and handler.lines[-1].endswith(f" request={response['X-Request-ID']}")


def test_it_writes_one_json_object_per_line():
    record = logging.LogRecord("webui.fleet", logging.WARNING, __file__, 1, "server %s is down", ("b",), None)
    token = logs.request_id.set("r1")
    try:
        line = logs.JsonFormatter().format(record)
    finally:
        logs.request_id.reset(token)

    entry = json.loads(line)
    assert entry["message"] == "server b is down" and entry["level"] == "WARNING"
    assert entry["logger"] == "webui.fleet" and entry["request_id"] == "r1" and "time" in entry


def test_it_chooses_json_lines_with_log_format_json(tmp_path):
    script = "import django, logging; django.setup(); logging.getLogger('probe').warning('hello %s', 'there')"
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "webui.settings", "LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )

    (line,) = [line for line in result.stderr.splitlines() if "probe" in line]
    assert json.loads(line)["message"] == "hello there"


async def test_it_tags_generation_logs_with_the_reply(transactional_db, ollama, user):
    from chat import generation, services

    handler = Collect(logs.PlainFormatter())
    logger = logging.getLogger("webui.fleet")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        conversation = await services.Conversation.objects.acreate(owner=user, model="llama3.2")
        await services.Message.objects.acreate(
            conversation=conversation, role="user", content="Hi", status="complete"
        )
        reply = await services.Message.objects.acreate(
            conversation=conversation, role="assistant", model="llama3.2", status="streaming"
        )
        generation.generation_start(reply=reply, user_id=user.pk)
        await generation.generation_drain()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    assert any(
        line.endswith(f" reply={reply.pk}") and "chat model=llama3.2" in line for line in handler.lines
    )
