"""The documented reverse proxy: deploy/nginx/ollama-webui.conf in front of two daphne workers.

nginx runs in the foreground with the site file rendered by deploy/render.py (a self-signed
certificate, this test's ports); the workers run the command line of
deploy/systemd/ollama-webui@.service on the shared PostgreSQL database and Redis layer, each
with an Ollama double of its own so the test can tell which worker answered.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shlex
import shutil
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection
from websockets.asyncio.client import connect as ws_connect

from chat.models import Message
from tests.conftest import ROOT, database_url, free_port, require, session_cookie, wait_for_port
from tests.ollama_double import OllamaDouble

pytestmark = [pytest.mark.engines, pytest.mark.e2e]

DEPLOY = ROOT / "deploy"


def _render_module():
    spec = importlib.util.spec_from_file_location("deploy_render", DEPLOY / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker_command(port: int) -> list[str]:
    """Return the ExecStart of the systemd unit for instance `port`, run from this checkout."""
    unit = (DEPLOY / "systemd" / "ollama-webui@.service").read_text()
    (line,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    command = shlex.split(line.removeprefix("ExecStart=").replace("%i", str(port)))
    assert command[0] == "/opt/ollama-webui/.venv/bin/daphne"
    return [sys.executable, "-m", "daphne", *command[1:]]


@dataclass
class Proxy:
    http_port: int
    https_port: int
    process: subprocess.Popen
    workers: list[subprocess.Popen]
    doubles: list[OllamaDouble]
    directory: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    def log(self) -> str:
        return "\n".join(
            f"== {path.name}\n{path.read_text(errors='replace')}"
            for path in sorted(self.directory.glob("*.log"))
        )


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    certificate, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            *["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"],
            *["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(certificate)],
        ],
        check=True,
        capture_output=True,
    )
    return certificate, key


def _nginx_conf(directory: Path, site: Path) -> Path:
    """Write a main nginx.conf around the site file, everything under `directory` (the prefix)."""
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must read this test's files
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/nginx-access.log;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {site};
}}
"""
    )
    return conf


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def proxy(transactional_db, double, tmp_path):
    nginx = shutil.which("nginx")
    require(nginx is not None, "nginx (apt-get install -y nginx)")
    require(shutil.which("openssl") is not None, "openssl")
    require(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL=postgres://…)")
    require(bool(settings.REDIS_URL), "Redis (REDIS_URL=redis://…)")
    second = OllamaDouble().start()
    http_port, https_port = free_port(), free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webui.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "ALLOWED_HOSTS": "localhost",
        "CSRF_TRUSTED_ORIGINS": f"https://localhost:{https_port}",
        "HTTPS": "1",
        "DEBUG": "0",
        "PYTHONUNBUFFERED": "1",
    }
    workers: list[subprocess.Popen] = []
    process: subprocess.Popen | None = None
    try:
        ports = []
        for ollama in (double, second):
            port = free_port()
            with open(tmp_path / f"worker-{port}.log", "wb") as log:
                workers.append(
                    subprocess.Popen(
                        worker_command(port),
                        cwd=ROOT,
                        env={**environment, "OLLAMA_HOST": ollama.url},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            ports.append(port)
        certificate, key = _self_signed_certificate(tmp_path)
        site = tmp_path / "ollama-webui.conf"
        site.write_text(
            _render_module().render(
                (DEPLOY / "nginx" / "ollama-webui.conf").read_text(),
                {
                    "SERVER_NAME": "localhost",
                    "HTTP_PORT": str(http_port),
                    "HTTPS_PORT": str(https_port),
                    "TLS_CERTIFICATE": str(certificate),
                    "TLS_CERTIFICATE_KEY": str(key),
                    "UPSTREAM_SERVERS": " ".join(f"server 127.0.0.1:{port};" for port in ports),
                },
            )
        )
        conf = _nginx_conf(tmp_path, site)
        arguments = [nginx, "-p", str(tmp_path), "-c", str(conf)]
        checked = subprocess.run([*arguments, "-t"], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        with open(tmp_path / "nginx-stderr.log", "wb") as log:
            process = subprocess.Popen([*arguments, "-g", "daemon off;"], stderr=log)
        for worker, port in zip(workers, ports, strict=True):
            wait_for_port(port, worker)
        wait_for_port(https_port, process)
        yield Proxy(http_port, https_port, process, workers, [double, second], tmp_path)
    finally:
        for running in [process, *workers]:
            if running is not None:
                _stop(running)
        second.stop()


def _tls_unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_it_serves_pages_over_https_through_the_proxy(proxy, user):
    cookie = session_cookie(user)
    with httpx.Client(verify=False, timeout=10) as client:
        redirect = client.get(f"http://localhost:{proxy.http_port}/accounts/login/")
        login = client.get(proxy.url + "/accounts/login/")
        home = client.get(proxy.url + "/", headers={"Cookie": f"sessionid={cookie}"})

    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"https://localhost:{proxy.https_port}/accounts/login/"
    assert login.status_code == 200 and 'name="password"' in login.text
    assert len(login.headers["x-request-id"]) == 32  # nginx's $request_id, passed on and answered
    assert "strict-transport-security" in login.headers  # the app knows it is behind TLS
    assert home.status_code == 200 and 'id="composer' in home.text


def test_it_passes_the_proxys_request_id_to_the_workers_logs(proxy, db):
    with httpx.Client(verify=False, timeout=10) as client:
        response = client.get(proxy.url + "/no-such-page/")

    assert response.status_code == 404
    deadline = time.monotonic() + 5
    while response.headers["x-request-id"] not in proxy.log() and time.monotonic() < deadline:
        time.sleep(0.05)  # the worker writes its log line as it answers
    assert f"request={response.headers['x-request-id']}" in proxy.log()


async def open_socket(proxy: Proxy, user):
    cookie = await database_sync_to_async(session_cookie)(user)
    return await ws_connect(
        f"wss://localhost:{proxy.https_port}/ws/chat/",
        ssl=_tls_unverified(),
        origin=proxy.url,
        additional_headers={"Cookie": f"sessionid={cookie}"},
    )


async def chat_through(socket, content: str) -> tuple[list[tuple[float, dict]], dict]:
    """Send a message; return (timed frames, the done frame) as the page would see them."""
    await socket.send(
        json.dumps({"type": "send", "conversation": None, "content": content, "model": "llama3.2"})
    )
    frames: list[tuple[float, dict]] = []
    async with asyncio.timeout(20):
        while True:
            frame = json.loads(await socket.recv())
            frames.append((time.monotonic(), frame))
            if frame["type"] == "done":
                return frames, frame


async def test_it_streams_a_reply_through_the_proxy_as_it_is_written(proxy, user):
    for double in proxy.doubles:
        double.configure(tokens_per_second=25, reply_tokens=50)  # two seconds of writing
    socket = await open_socket(proxy, user)

    frames, done = await chat_through(socket, "Tell me a story")
    await socket.close()

    deltas = [(moment, frame) for moment, frame in frames if frame["type"] == "delta"]
    assert done["status"] == "complete" and len(deltas) > 5
    # Unbuffered: the text arrives while it is written, not in one piece at the end.
    assert frames[-1][0] - deltas[0][0] > 1.0
    text = "".join(frame["c"] for _moment, frame in deltas if "c" in frame)
    reply = await Message.objects.aget(pk=done["reply"])
    assert text == reply.content and reply.status == "complete"


async def test_it_spreads_sockets_over_both_workers(proxy, user):
    for double in proxy.doubles:
        double.configure(tokens_per_second=50, reply_tokens=40)
    first, second = await open_socket(proxy, user), await open_socket(proxy, user)

    await asyncio.gather(chat_through(first, "One"), chat_through(second, "Two"))
    await first.close()
    await second.close()

    # Each worker talks to its own double: both answered a chat.
    for double in proxy.doubles:
        assert [entry for entry in double.requests if entry["path"] == "/api/chat"], proxy.log()


def test_it_keeps_long_sockets_open_and_buffers_nothing(proxy):
    dump = subprocess.run(
        ["nginx", "-p", str(proxy.directory), "-c", str(proxy.directory / "nginx.conf"), "-T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for directive in [
        "proxy_read_timeout 1h;",
        "proxy_send_timeout 1h;",
        "proxy_buffering off;",
        "proxy_request_buffering off;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ]:
        assert directive in dump


def test_it_ships_systemd_units_that_systemd_accepts():
    analyze = shutil.which("systemd-analyze")
    require(analyze is not None, "systemd-analyze")
    units = DEPLOY / "systemd"
    result = subprocess.run(
        [
            analyze,
            "verify",
            str(units / "ollama-webui@8001.service"),
            str(units / "ollama-webui-migrate.service"),
            str(units / "ollama-webui.target"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    # Only the install paths are missing here (/opt/ollama-webui); anything else is a mistake.
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert all(
        "/opt/ollama-webui/.venv/bin/" in line and "is not executable" in line for line in complaints
    ), complaints
