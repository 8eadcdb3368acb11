"""Earshot's own processes for the end-to-end benchmarks: gunicorn, a Celery worker and beat.

Each runs as a real child process, as in production (the Dockerfile's gunicorn command,
docker-compose's worker and beat), against the benchmark's throwaway database, a Redis given
by REDIS_URL and a Celery queue of the run's own, so no other worker on the same Redis takes
its tasks. Their logs go to var/bench-<name>.log. `ProcessStack` stops every process it
started on the way out, however the block ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = REPO_ROOT / "var"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# What the Dockerfile runs: three sync workers.
GUNICORN_WORKERS = 3
# What docker-compose's `celery worker` gets on this 2-core machine: prefork, one child a core.
WORKER_CONCURRENCY = 2


class StackError(RuntimeError):
    """A process did not start, or died: the figures of the run would mean nothing."""


def free_port() -> int:
    """A TCP port on loopback nobody listens on now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_environment(
    *, database_url: str, redis_url: str, queue: str, x_api_base_url: str, extra: Mapping[str, str]
) -> dict[str, str]:
    """The environment of every Earshot process of the run: its database, Redis, queue and
    the X simulator with the credentials the benchmarks' simulators accept."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": queue,
        "X_API_BASE_URL": x_api_base_url,
        "X_BEARER_TOKEN": SIM_BEARER,
        "X_CONSUMER_KEY": SIM_CONSUMER_KEY,
        "X_CONSUMER_SECRET": "bench-consumer-secret",
        "X_ACCESS_TOKEN": SIM_ACCESS_TOKEN,
        "X_ACCESS_TOKEN_SECRET": "bench-access-secret",
        "EARSHOT_DEVELOPMENT": "1",  # plain HTTP cookies on loopback, a throwaway SECRET_KEY
        "DEBUG": "False",  # DEBUG keeps every SQL statement in memory: not production
        "LOG_FORMAT": "plain",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


SIM_BEARER = "bench-bearer"
SIM_CONSUMER_KEY = "bench-consumer-key"
SIM_ACCESS_TOKEN = "bench-access-token"


def queue_name() -> str:
    return f"earshot-bench-{uuid.uuid4().hex[:8]}"


class ProcessStack:
    """Child processes started one by one, all stopped (TERM, then KILL) on exit."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self._scratch = tempfile.TemporaryDirectory(prefix="earshot-bench-")

    def __enter__(self) -> ProcessStack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        LOG_DIR.mkdir(exist_ok=True)
        log = open(LOG_DIR / f"bench-{name}.log", "wb")  # noqa: SIM115 (closed in stop())
        self._logs.append(log)
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes[name] = process
        return process

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(
                    f"{name} exited with status {process.returncode}: see var/bench-{name}.log"
                )

    def stop(self) -> None:
        # Reverse order: beat stops sending before the worker stops taking.
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        self._scratch.cleanup()

    # -- Earshot's processes --

    def start_web(self, *, port: int, workers: int = GUNICORN_WORKERS) -> str:
        """gunicorn as the Dockerfile runs it; returns its base URL once it answers."""
        self.start(
            "web",
            [
                sys.executable, "-m", "gunicorn", "config.wsgi",
                "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            ],
        )  # fmt: skip
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if requests.get(f"{base_url}/login/", timeout=2).status_code == 200:
                    return base_url
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise StackError(f"gunicorn did not answer within {START_TIMEOUT:.0f} s")

    def start_worker(
        self, *, queue: str, concurrency: int = WORKER_CONCURRENCY, name: str = "worker"
    ) -> subprocess.Popen[bytes]:
        """A prefork `celery worker` on the run's queue; returns once it answers a ping."""
        hostname = f"{queue}-{name}@localhost"
        process = self.start(
            name,
            [
                sys.executable, "-m", "celery", "-A", "config", "worker",
                "--hostname", hostname, "--queues", queue, "--loglevel", "info",
                "--concurrency", str(concurrency),
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
        )  # fmt: skip
        _wait_for_ping(self, hostname)
        return process

    def start_beat(self) -> subprocess.Popen[bytes]:
        """`celery beat` with a schedule file of the run's own."""
        schedule = Path(self._scratch.name) / "celerybeat-schedule"
        return self.start(
            "beat",
            [
                sys.executable, "-m", "celery", "-A", "config", "beat",
                "--loglevel", "info", "--schedule", str(schedule),
            ],
        )  # fmt: skip


def _wait_for_ping(stack: ProcessStack, hostname: str) -> None:
    from celery import Celery

    pinger: Any = Celery("bench-ping", broker=stack.env["REDIS_URL"])
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            stack.check_alive()
            if pinger.control.ping(timeout=0.5, destination=[hostname]):
                return
    finally:
        pinger.close()
    raise StackError(f"the celery worker {hostname} did not answer a ping")


def agent_log_in(session: requests.Session, *, base_url: str, username: str, password: str) -> None:
    """Log in through /login/ as a browser does (its CSRF cookie and token)."""
    session.get(f"{base_url}/login/", timeout=30).raise_for_status()
    answer = session.post(
        f"{base_url}/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=30,
    )
    if not answer.url.rstrip("/").endswith("/queue"):
        raise StackError(f"logging in as {username} ended on {answer.url} ({answer.status_code})")
