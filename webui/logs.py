"""Structured logs: every line carries the HTTP request's id or the reply being generated.

`request_id_middleware` gives each HTTP request an id (the proxy's `X-Request-ID` when it sends
a sane one, else a new one), answers it in the `X-Request-ID` header and keeps it in a context
variable while the request runs; `reply_context` does the same for a reply's generation task.
`ContextFilter` copies both onto every log record; `PlainFormatter` appends
` request=<id>` / ` reply=<id>` to the line, `JsonFormatter` (LOG_FORMAT=json) writes one
JSON object per line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime

from asgiref.sync import iscoroutinefunction
from django.utils.decorators import sync_and_async_middleware

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
reply_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("reply_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def reply_context(reply: int) -> None:
    """Tag the logs of the current task (a reply's generation) with `reply=<id>`."""
    reply_id.set(reply)


def _request_id_for(request) -> str:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if _SANE_ID.match(offered) else uuid.uuid4().hex


@sync_and_async_middleware
def request_id_middleware(get_response):
    """Give each HTTP request an id for its log lines and its response's X-Request-ID header."""
    # The id stays set after the response: Django logs "Not Found" and errors after the
    # middleware chain returns. Each request runs in a context of its own under ASGI, and a
    # sync worker's next request replaces it.
    if iscoroutinefunction(get_response):

        async def middleware(request):
            request.request_id = _request_id_for(request)
            request_id.set(request.request_id)
            response = await get_response(request)
            response[REQUEST_ID_HEADER] = request.request_id
            return response

    else:

        def middleware(request):
            request.request_id = _request_id_for(request)
            request_id.set(request.request_id)
            response = get_response(request)
            response[REQUEST_ID_HEADER] = request.request_id
            return response

    return middleware


class ContextFilter(logging.Filter):
    """Copy the request and reply ids of the running task onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        if not hasattr(record, "reply"):
            record.reply = reply_id.get()
        parts = []
        if record.request_id:
            parts.append(f"request={record.request_id}")
        if record.reply is not None:
            parts.append(f"reply={record.reply}")
        record.context = (" " + " ".join(parts)) if parts else ""
        return True


class PlainFormatter(logging.Formatter):
    """Human-readable lines, with the ids at the end (` request=… reply=…`)."""

    def __init__(self, fmt: str | None = None, *args, **kwargs) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s", *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "context"):
            ContextFilter().filter(record)
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "context"):
            ContextFilter().filter(record)
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.request_id:
            entry["request_id"] = record.request_id
        if record.reply is not None:
            entry["reply"] = record.reply
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)
