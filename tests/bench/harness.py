"""The processes of a benchmark: the Ollama double, daphne, and what we read from /proc about them.

Nothing here imports Django: the parent process (the load client) sets up Django itself, against
the same database file daphne uses, after `migrate` ran in a subprocess.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_fd_limit(wanted: int = 8192) -> int:
    """Raise this process's open-file limit (children inherit it); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- /proc ---------------------------------------------------------------------------------
@dataclass
class ProcessStats:
    """CPU and memory of one process (all its threads), read from /proc."""

    pid: int

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        # fields[0] is the state (field 3 of the man page): utime is field 14, stime field 15.
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def _status(self, key: str) -> float:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # kB → MB
        return 0.0

    def rss_mb(self) -> float:
        return self._status("VmRSS")

    def peak_rss_mb(self) -> float:
        """Return the peak resident size since start or since `reset_peak()`."""
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        with open(f"/proc/{self.pid}/clear_refs", "w") as clear:
            clear.write("5")

    def fd_limit(self) -> int:
        with open(f"/proc/{self.pid}/limits") as limits:
            for line in limits:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        return 0

    def threads(self) -> int:
        return int(self._status("Threads") * 1024)


class CpuWindow:
    """CPU seconds a process used between `start()` and `stop()`, with the wall time."""

    def __init__(self, stats: ProcessStats):
        self.stats = stats
        self.cpu = self.wall = 0.0
        self._cpu0 = self._wall0 = 0.0

    def start(self) -> CpuWindow:
        self._cpu0, self._wall0 = self.stats.cpu_seconds(), time.perf_counter()
        return self

    def stop(self) -> CpuWindow:
        self.cpu = self.stats.cpu_seconds() - self._cpu0
        self.wall = time.perf_counter() - self._wall0
        return self

    @property
    def share(self) -> float:
        """Return the share of one core used over the window."""
        return self.cpu / self.wall if self.wall else 0.0


# -- the double ----------------------------------------------------------------------------
@dataclass
class DoubleProcess:
    """`python -m tests.ollama_double` in its own process, so it never shares a core's GIL."""

    tokens_per_second: float | None = None
    process: subprocess.Popen | None = None
    url: str = ""
    log_path: Path | None = None

    def start(self, log_dir: Path) -> DoubleProcess:
        port = free_port()
        command = [PYTHON, "-m", "tests.ollama_double", "--port", str(port)]
        if self.tokens_per_second:
            command += ["--tokens-per-second", str(self.tokens_per_second)]
        self.log_path = log_dir / f"double-{port}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(port, self.process, "the Ollama double")
        self.url = f"http://127.0.0.1:{port}"
        return self

    @property
    def stats(self) -> ProcessStats:
        assert self.process is not None
        return ProcessStats(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process)


# -- daphne --------------------------------------------------------------------------------
@dataclass
class Environment:
    """A fresh data folder and database for one group of benchmarks."""

    root: Path
    database_url: str = ""
    data_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'db.sqlite3'}"

    def variables(self) -> dict[str, str]:
        """Return the production-like environment daphne and `migrate` run with."""
        return {
            "DJANGO_SETTINGS_MODULE": "webui.settings",
            "DATA_DIR": str(self.data_dir),
            "DATABASE_URL": self.database_url,
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "REDIS_URL": "",
            "PYTHONUNBUFFERED": "1",
        }

    def migrate(self) -> None:
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
            cwd=ROOT,
            env={**os.environ, **self.variables()},
            check=True,
            timeout=300,
        )

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Daphne:
    """daphne serving the app with production settings, on a free port."""

    environment: Environment
    double: DoubleProcess
    extra: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    port: int = 0
    log_path: Path | None = None
    started_at: float = 0.0

    def start(self) -> Daphne:
        self.port = free_port()
        self.log_path = self.environment.root / f"daphne-{self.port}.log"
        env = {**os.environ, **self.environment.variables(), "OLLAMA_HOST": self.double.url, **self.extra}
        command = [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "webui.asgi:application"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process, "daphne")
        self.started_at = time.monotonic()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def stats(self) -> ProcessStats:
        assert self.process is not None
        return ProcessStats(self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def errors_logged(self) -> list[str]:
        """Return the log lines that report errors (tracebacks, ERROR records)."""
        if self.log_path is None or not self.log_path.exists():
            return []
        pattern = re.compile(r"ERROR|Traceback|Exception")
        return [
            line for line in self.log_path.read_text(errors="replace").splitlines() if pattern.search(line)
        ]

    def stop(self) -> None:
        stop_process(self.process)


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # nothing to await: the port is not bound yet
    raise TimeoutError(f"{what} did not listen on {port} within {timeout}s")


def stop_process(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
