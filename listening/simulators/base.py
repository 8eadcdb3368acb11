"""What every platform simulator shares: a threaded HTTP server, routing, injected faults,
logs, the /_sim/ control surface and the command line that runs one for `make run`.

A platform's simulator subclasses `PlatformSimulator`, lists its `routes()` (the platform's
real paths) and answers them in the platform's wire format; the platform's own client
library talks to it unmodified. Stdlib only, and no Django, like the X simulator.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger("earshot.simulators")

JSON = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    # Last value of each query parameter; `query_lists` keeps repeats (Mastodon's any[]).
    query: dict[str, str]
    query_lists: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; raises ApiError 400 when it is not."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise ApiError(json_answer(400, {"error": "the body is not valid JSON"})) from exc

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (or a JSON object body), last values."""
        if "json" in (self.headers.get("Content-Type") or ""):
            payload = self.json()
            return {str(k): str(v) for k, v in payload.items()} if isinstance(payload, dict) else {}
        text = self.body.decode("utf-8", errors="replace")
        return {name: values[-1] for name, values in parse_qs(text, keep_blank_values=True).items()}

    @property
    def bearer_token(self) -> str:
        scheme, _, credential = (self.headers.get("Authorization") or "").partition(" ")
        return credential if scheme.lower() == "bearer" else ""


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(status, json.dumps(body, ensure_ascii=False).encode(), JSON, dict(headers or {}))


class ApiError(Exception):
    """Raised by a route to answer with `answer` (an error in the platform's own shape)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


# A queued fault: an Answer to give instead of the real one, or None to cut the connection.
_Fault = Answer | None
Route = tuple[str, re.Pattern[str], Callable[..., Answer]]


class RateWindow:
    """A fixed window budget, as the platforms count them: `limit` calls per `seconds`."""

    def __init__(self, limit: int, seconds: int) -> None:
        self.limit = limit
        self.seconds = seconds
        self.reset_at = 0.0
        self.remaining = limit

    def spend(self, now: datetime) -> bool:
        """Take one call from the window; False when none is left before `reset_at`."""
        moment = now.timestamp()
        if moment >= self.reset_at:
            self.reset_at = moment + self.seconds
            self.remaining = self.limit
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


class PlatformSimulator:
    """A platform's API on 127.0.0.1, with faults that tests (or other processes) inject."""

    name = "platform"
    server_version = "earshot-simulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        # The simulator's clock: tests replace it to move time (rate-limit windows, ages).
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._compiled_routes: list[Route] | None = None
        self.reset()

    # -- what a platform's simulator provides --

    def routes(self) -> list[tuple[str, str, Callable[..., Answer]]]:
        """(method, path regex with named groups, handler(request, **groups)) triples."""
        raise NotImplementedError

    def reset_content(self) -> None:
        """Forget every post, account and window of the platform."""

    def add_post(self, **fields: Any) -> dict[str, Any]:
        """Make a post visible to searches; returns it in the simulator's own terms."""
        raise NotImplementedError

    def error_answer(self, status: int) -> Answer:
        """The platform's own body for an error status (used by `fail_next` without a body)."""
        return json_answer(status, {"error": HTTPStatus(status).phrase})

    def not_found(self, request: Request) -> Answer:
        return self.error_answer(404)

    # -- lifecycle --

    def start(self) -> PlatformSimulator:
        if self._server is None:
            self._server = _Server((self.host, self.port), _Handler)
            self._server.simulator = self
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = self._thread = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {self.name} simulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> PlatformSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget content, logs, windows and queued faults."""
        with self._lock:
            self._faults: list[_Fault] = []
            self._slow_answers: list[float] = []
            self._received_posts: list[dict[str, Any]] = []
            self._requests_log: list[tuple[str, str, dict[str, str], datetime]] = []
            self.reset_content()

    # -- faults --

    def fail_next(
        self,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        count: int = 1,
        content_type: str = JSON,
    ) -> None:
        """Answer the next `count` API requests with this status and body, touching nothing.

        `body` may be bytes (sent as is: malformed JSON, HTML), a JSON value, or None for
        the platform's own error body for that status.
        """
        if body is None:
            answer = self.error_answer(status)
        elif isinstance(body, bytes):
            answer = Answer(status, body, content_type)
        else:
            answer = json_answer(status, body)
        answer.headers.update(headers or {})
        with self._lock:
            self._faults.extend(copy.deepcopy(answer) for _ in range(count))

    def cut_next(self, count: int = 1) -> None:
        """Close the connection of the next `count` requests without answering."""
        with self._lock:
            self._faults.extend([None] * count)

    def slow_next(self, seconds: float, count: int = 1) -> None:
        """Carry out the next `count` requests, then wait `seconds` before answering each."""
        with self._lock:
            self._slow_answers.extend([seconds] * count)

    # -- what tests look at --

    @property
    def received_posts(self) -> list[dict[str, Any]]:
        """Every post (reply) created through the API, in order."""
        with self._lock:
            return copy.deepcopy(self._received_posts)

    @property
    def requests_log(self) -> list[tuple[str, str, dict[str, str], datetime]]:
        """(method, path, query, time) of every API request, faults included."""
        with self._lock:
            return list(self._requests_log)

    def clear_logs(self) -> None:
        with self._lock:
            self._received_posts.clear()
            self._requests_log.clear()

    # -- dispatch --

    def handle(self, request: Request) -> Answer | None:
        """Answer one request (None: hang up without answering)."""
        if request.path.startswith("/_sim/"):
            return self._control(request)
        with self._lock:
            self._requests_log.append((request.method, request.path, request.query, self.now()))
            if self._faults:
                return self._faults.pop(0)
        try:
            answer = self._route(request)
        except ApiError as error:
            answer = error.answer
        with self._lock:
            delay = self._slow_answers.pop(0) if self._slow_answers else 0.0
        if delay:
            time.sleep(delay)
        return answer

    def _route(self, request: Request) -> Answer:
        if self._compiled_routes is None:
            self._compiled_routes = [
                (method, re.compile(pattern), handler) for method, pattern, handler in self.routes()
            ]
        for method, pattern, handler in self._compiled_routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return handler(request, **match.groupdict())
        return self.not_found(request)

    def _control(self, request: Request) -> Answer:
        """/_sim/*: not part of the platform. Lets other processes seed posts and faults."""
        try:
            payload = json.loads(request.body) if request.body else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return json_answer(400, {"error": "the body must be a JSON object"})
        route = (request.method, request.path)
        if route == ("POST", "/_sim/posts"):
            try:
                return json_answer(201, {"data": self.add_post(**payload)})
            except (TypeError, KeyError, ValueError) as exc:
                return json_answer(400, {"error": str(exc)})
        if route == ("GET", "/_sim/replies"):
            return json_answer(200, {"data": self.received_posts})
        if route == ("POST", "/_sim/fail"):
            self.fail_next(
                int(payload["status"]), payload.get("body"), count=int(payload.get("count", 1))
            )
            return json_answer(200, {"ok": True})
        if route == ("POST", "/_sim/reset"):
            self.reset()
            return json_answer(200, {"ok": True})
        return json_answer(404, {"error": f"no control endpoint {request.method} {request.path}"})


# --- HTTP shell -----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    simulator: PlatformSimulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        simulator = self.server.simulator
        self.server_version = simulator.server_version
        url = urlsplit(self.path)
        lists = parse_qs(url.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=method,
            path=url.path,
            query={name: values[-1] for name, values in lists.items()},
            query_lists=lists,
            headers=self.headers,
            body=self.rfile.read(length) if length else b"",
        )
        try:
            answer = simulator.handle(request)
        except Exception:
            # A simulator bug must still answer, as a platform's own failures do.
            logger.exception("%s simulator failed on %s %s", simulator.name, method, self.path)
            answer = simulator.error_answer(500)
        if answer is None:
            self.close_connection = True
            return
        self.send_response(answer.status)
        if self.close_connection:
            # The client asked to close (Connection: close): say so, or it may reuse the
            # connection we are about to hang up.
            self.send_header("Connection", "close")
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            try:
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up waiting (a timeout test): nobody is left to answer.
                self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


# --- command line -----------------------------------------------------------------------------


def simulator_arguments(description: str, *, default_port: int) -> argparse.ArgumentParser:
    """The options every simulator's command line shares (see `serve_with_demo_posts`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--brand-name", default="Northwind Coffee")
    parser.add_argument("--brand-handle", default="NorthwindHelp")
    parser.add_argument(
        "--seed-count", type=int, default=10, help="posts spread over the last hour"
    )
    parser.add_argument("--generate-every", type=float, default=8.0, help="seconds; 0 turns it off")
    parser.add_argument("--seed", type=int, default=None, help="makes the posts repeatable")
    return parser


def serve_with_demo_posts(
    simulator: PlatformSimulator,
    args: argparse.Namespace,
    posts: Iterator[dict[str, Any]],
    add: Callable[[dict[str, Any], datetime], Any],
) -> int:
    """Seed `args.seed_count` posts over the last hour, serve, and add one every
    `args.generate_every` seconds until SIGINT or SIGTERM. `add(post, created_at)` stores one."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    spread = random.Random(args.seed)
    now = simulator.now()
    for offset in sorted((spread.uniform(0, 3600) for _ in range(args.seed_count)), reverse=True):
        add(next(posts), now - timedelta(seconds=offset))
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    simulator.start()
    logger.info("%s simulator on %s", simulator.name, simulator.base_url)
    next_at = time.monotonic() + args.generate_every
    try:
        while not stopping.wait(0.2):
            if args.generate_every > 0 and time.monotonic() >= next_at:
                add(next(posts), simulator.now())
                next_at += args.generate_every
    finally:
        simulator.stop()
    return 0
