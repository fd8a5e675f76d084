"""Point 7: big histories, on SQLite and on PostgreSQL.

A user with 10,000 conversations (two messages each, a few pinned) and one conversation of
2,000 messages. For each page a person opens (the chat page, the sidebar's first page and its
next page, the conversation's first screen, "load earlier") it reports the time daphne takes to
serve it over HTTP and the number of SQL queries the request runs, for that user and for a user
with fifty conversations: equal counts mean no query per row (no N+1).

Each database runs in its own process (`python -m tests.bench.histories --database-url …`),
because Django binds one database per process; it prints its figures as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from tests.bench.figures import Figure
from tests.bench.harness import PYTHON, ROOT, Daphne, DoubleProcess, Environment

SMALL_CONVERSATIONS = 50  # enough for a second sidebar page, to compare query counts with
POSTGRES_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/webui_bench"
PAGES = {
    "page": "chat page (new chat + sidebar)",
    "sidebar": "sidebar, first page",
    "sidebar_next": "sidebar, next page",
    "conversation": "conversation of 2,000 messages, first screen",
    "earlier": "conversation, “load earlier”",
}
USER_TEXT = "Could you explain how the tide tables work for the harbour, and what a spring tide means?"
REPLY_TEXT = (
    "Sure. **Tides** follow the moon:\n\n1. Two highs and two lows a day.\n2. Spring tides come "
    "at new and full moon.\n\n```python\nfor hour in range(24):\n    print(height(hour))\n```\n\n"
    "The harbour tables list the times and heights; add the local correction. " * 3
)


def history_figures() -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    for database in ("SQLite", "PostgreSQL"):
        for key, what in PAGES.items():
            figures[f"{database}_{key}"] = Figure(
                "7",
                f"{database}: {what}",
                "ms",
                target="≤ 100",
                check=lambda value: value <= 100,
                digits=1,
                bound="server",
            )
        figures[f"{database}_queries"] = Figure(
            "7", f"{database}: SQL queries per request (10,000 rows vs 10)", ""
        )
    return figures


def postgres_reset() -> str:
    """Drop and create the `webui_bench` database; return an error text when PostgreSQL is absent."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as connection:
            connection.execute("DROP DATABASE IF EXISTS webui_bench WITH (FORCE)")
            connection.execute("CREATE DATABASE webui_bench")
    except Exception as error:  # any failure means: not measured, and say why
        return str(error).splitlines()[0]
    return ""


def run(root: Path, runs: int, quick: bool, figures: dict[str, Figure], notes: list[str]) -> None:
    """Measure point 7 on SQLite, then on PostgreSQL (unless --quick or it is unreachable)."""
    databases = [("SQLite", "")]
    if not quick:
        problem = postgres_reset()
        if problem:
            notes.append(f"PostgreSQL not measured: {problem}")
        else:
            databases.append(("PostgreSQL", POSTGRES_URL))
    for name, url in databases:
        command = [
            PYTHON,
            "-m",
            "tests.bench.histories",
            "--root",
            str(root / f"history-{name}"),
            "--runs",
            str(runs),
        ]
        if url:
            command += ["--database-url", url]
        if quick:
            command += ["--conversations", "2000", "--messages", "500"]
        finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)
        if finished.returncode:
            notes.append(f"point 7 on {name} failed: {finished.stderr.strip().splitlines()[-1:]}")
            continue
        result = json.loads(finished.stdout.strip().splitlines()[-1])
        for key, values in result["times"].items():
            figures[f"{name}_{key}"].values = values
        counts = result["queries"]
        figures[f"{name}_queries"].values = [max(big for big, _small in counts.values())]
        figures[f"{name}_queries"].note = ", ".join(
            f"{key} {big} vs {small}" for key, (big, small) in counts.items()
        )
        if any(big != small for big, small in counts.values()):
            notes.append(f"point 7 on {name}: query counts differ with the number of rows: {counts}")
        notes.extend(f"point 7 on {name}: {note}" for note in result["notes"])


# -- the measuring process ---------------------------------------------------------------------
def seed(*, conversations: int, messages: int):
    """Create the big user (and a small one); return them with the big conversation."""
    from chat.models import Conversation, Message
    from tests.bench.world import users_create

    big, small = users_create(1, prefix="historian")[0], users_create(1, prefix="newcomer")[0]
    for owner, count, per in ((big, conversations, 2), (small, SMALL_CONVERSATIONS, 2)):
        rows = [
            Conversation(
                owner=owner, title=f"Harbour question {index}", model="llama3.2", pinned=index % 2000 == 7
            )
            for index in range(count)
        ]
        made = Conversation.objects.bulk_create(rows, batch_size=2000)
        made = list(Conversation.objects.filter(owner=owner).order_by("id").values_list("id", flat=True))
        Message.objects.bulk_create(
            [
                Message(conversation_id=conversation_id, role=role, content=text, model="llama3.2")
                for conversation_id in made
                for role, text in (("user", USER_TEXT), ("assistant", REPLY_TEXT))[:per]
            ],
            batch_size=2000,
        )
    long = Conversation.objects.create(owner=big, title="The long one", model="llama3.2")
    Message.objects.bulk_create(
        [
            Message(
                conversation=long,
                role="user" if index % 2 == 0 else "assistant",
                content=USER_TEXT if index % 2 == 0 else REPLY_TEXT,
                model="llama3.2",
                eval_count=None if index % 2 == 0 else 120,
                eval_duration=None if index % 2 == 0 else 2_000_000_000,
                total_duration=None if index % 2 == 0 else 2_500_000_000,
            )
            for index in range(messages)
        ],
        batch_size=2000,
    )
    long_small = Conversation.objects.create(owner=small, title="The short one", model="llama3.2")
    Message.objects.bulk_create(
        [
            Message(conversation=long_small, role=("user", "assistant")[index % 2], content=USER_TEXT)
            for index in range(10)
        ]
    )
    return big, small, long, long_small


def urls_for(user, conversation) -> dict[str, str]:
    from chat import services

    cursor = services.sidebar_page(user=user).next_cursor
    history, _more = services.history_page(conversation=conversation)
    return {
        "page": "/",
        "sidebar": "/sidebar/",
        "sidebar_next": f"/sidebar/?cursor={quote(cursor)}" if cursor else "/sidebar/",
        "conversation": f"/c/{conversation.id}/",
        "earlier": f"/c/{conversation.id}/history/?before={history[0].id}",
    }


def count_queries(user, urls: dict[str, str]) -> dict[str, int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    browser = Client(SERVER_NAME="127.0.0.1")
    browser.force_login(user)
    counts = {}
    for key, url in urls.items():
        browser.get(url, headers={"HX-Request": "true"} if key != "page" and key != "conversation" else {})
        with CaptureQueriesContext(connection) as captured:
            response = browser.get(
                url, headers={"HX-Request": "true"} if key not in ("page", "conversation") else {}
            )
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        counts[key] = len(captured.captured_queries)
    return counts


def time_pages(
    daphne: Daphne, cookie: str, urls: dict[str, str], runs: int, per_run: int = 5
) -> dict[str, list[float]]:
    """Return, per page, one median time (ms) per run over a kept-alive HTTP connection."""
    connection = http.client.HTTPConnection("127.0.0.1", daphne.port, timeout=30)
    headers = {"Cookie": f"sessionid={cookie}", "Host": "127.0.0.1"}
    times: dict[str, list[float]] = {key: [] for key in urls}

    def fetch(key: str, url: str) -> float:
        extra = {"HX-Request": "true"} if key not in ("page", "conversation") else {}
        started = time.perf_counter()
        connection.request("GET", url, headers={**headers, **extra})
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200 or not body:
            raise RuntimeError(f"{url} answered {response.status}")
        return elapsed

    for key, url in urls.items():
        fetch(key, url)  # warm: templates compiled, the model list cached
    for _run in range(runs):
        for key, url in urls.items():
            times[key].append(statistics.median(fetch(key, url) for _ in range(per_run)))
    connection.close()
    return times


def measure(root: Path, database_url: str, runs: int, conversations: int, messages: int) -> dict:
    from tests.bench import world

    environment = Environment(root, database_url=database_url)
    environment.migrate()
    double = DoubleProcess().start(root)
    notes: list[str] = []
    try:
        world.setup_django(environment, ollama_url=double.url)
        started = time.perf_counter()
        big, small, long, long_small = seed(conversations=conversations, messages=messages)
        seconds = time.perf_counter() - started
        notes.append(f"seeded {conversations:,} conversations and {messages:,} messages in {seconds:.1f} s")
        big_urls, small_urls = urls_for(big, long), urls_for(small, long_small)
        big_counts, small_counts = count_queries(big, big_urls), count_queries(small, small_urls)
        cookie = world.cookies_for([big])[0]
        daphne = Daphne(environment, double).start()
        try:
            times = time_pages(daphne, cookie, big_urls, runs)
        finally:
            daphne.stop()
    finally:
        double.stop()
    return {
        "times": times,
        "queries": {key: (big_counts[key], small_counts[key]) for key in big_counts},
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.histories")
    parser.add_argument("--root", required=True)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=2_000)
    args = parser.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    result = measure(root, args.database_url, args.runs, args.conversations, args.messages)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
