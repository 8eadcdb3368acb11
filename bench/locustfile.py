"""Locust agents working the queue as community managers do, for `make load` (bench/load.py).

Each simulated agent logs in through /login/ with its own account, then loops:

1. on the queue page, makes the live check htmx makes (GET of the rows' `hx-get` URL with
   its `since` fingerprint, HX-Request and HX-Target headers) every LOAD_LIVE_CHECK_SECONDS,
   a few times; now and then opens one of the mentions the queue shows and comes back;
2. presses "Claim next" and opens the mention it is handed;
3. takes LOAD_THINK_SECONDS to write, then sends the reply the page drafted (60 %; when the
   tone or form-letter check asks for a second look, sends it anyway with a reason, as an
   agent would), releases it (20 %) or resolves it (20 %); back to the queue.

Every response must be the one a browser expects (statuses below); anything else counts as
a failure. Each agent notes when it held which mention (from the claim's answer to the
request that let go of it); bench/load.py looks for two agents holding one mention at once.

Settings come from the environment, set by bench/load.py: LOAD_USERNAME_PREFIX,
LOAD_PASSWORD, LOAD_CLAIMS_PATH, LOAD_THINK_SECONDS, LOAD_LIVE_CHECK_SECONDS.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import random
import re
import time
from typing import Any

from locust import HttpUser, events, task
from locust.clients import ResponseContextManager

USERNAME_PREFIX = os.environ.get("LOAD_USERNAME_PREFIX", "load-agent-")
PASSWORD = os.environ.get("LOAD_PASSWORD", "")
CLAIMS_PATH = os.environ.get("LOAD_CLAIMS_PATH", "")
THINK_SECONDS = float(os.environ.get("LOAD_THINK_SECONDS", "5"))
LIVE_CHECK_SECONDS = float(os.environ.get("LOAD_LIVE_CHECK_SECONDS", "3"))
LIVE_CHECKS_PER_VISIT = (2, 5)
OPEN_FROM_QUEUE_SHARE = 0.3
# What an agent does with a claimed mention: (action, weight).
ACTIONS = (("reply", 60), ("release", 20), ("resolve", 20))
OVERRIDE_REASON = "Load test: the drafted reply is fine as it is."

_ROWS_URL = re.compile(r'id="queue-rows"[^>]*?hx-get="([^"]+)"')
_MENTION_LINK = re.compile(r'href="(/mentions/(\d+)/)"')
_MENTION_PATH = re.compile(r"/mentions/(\d+)/$")
_REPLY_TEXT = re.compile(r'<textarea name="text"[^>]*>(.*?)</textarea>', re.DOTALL)
_OPENED_AT = re.compile(r'name="opened_at" value="([^"]*)"')

_agent_numbers = itertools.count(1)
# (mention id, username, held from, held until): monotonic seconds in this one process.
HOLDS: list[tuple[int, str, float, float]] = []


@events.test_stop.add_listener
def _save_holds(**_kwargs: Any) -> None:
    if CLAIMS_PATH:
        with open(CLAIMS_PATH, "w") as file:
            json.dump(HOLDS, file)


class Agent(HttpUser):
    # The waits are inside the task, where an agent would wait.
    wait_time = staticmethod(lambda: 0)  # type: ignore[assignment]

    def on_start(self) -> None:
        self.username = f"{USERNAME_PREFIX}{next(_agent_numbers):02d}"
        self.poll_url = ""
        self.queue_mentions: list[str] = []
        self._log_in()

    # -- the loop --

    @task
    def work_the_queue(self) -> None:
        for _ in range(random.randint(*LIVE_CHECKS_PER_VISIT)):
            time.sleep(LIVE_CHECK_SECONDS)
            self._live_check()
        if self.queue_mentions and random.random() < OPEN_FROM_QUEUE_SHARE:
            self._open(random.choice(self.queue_mentions), name="/mentions/[id]/ (from the queue)")
            self._queue_page()
        self._claim_next_and_work()

    # -- steps --

    def _log_in(self) -> None:
        self.client.get("/login/", name="/login/")
        with self.client.post(
            "/login/",
            data={
                "username": self.username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": self._csrf(),
            },
            name="/login/ (POST)",
            allow_redirects=False,
            catch_response=True,
        ) as answer:
            _expect_redirect(answer, "/queue/")
        self._queue_page()

    def _queue_page(self) -> None:
        with self.client.get("/queue/", name="/queue/", catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"queue page: {answer.status_code}")
                return
            self._read_rows(answer.text)

    def _live_check(self) -> None:
        if not self.poll_url:
            self._queue_page()
            return
        with self.client.get(
            self.poll_url,
            headers={"HX-Request": "true", "HX-Target": "queue-rows"},
            name="/queue/ (live check)",
            catch_response=True,
        ) as answer:
            if answer.status_code == 200:
                self._read_rows(answer.text)
            elif answer.status_code != 204:
                answer.failure(f"live check: {answer.status_code}")

    def _open(self, path: str, *, name: str) -> str:
        with self.client.get(path, name=name, catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"mention page: {answer.status_code}")
                return ""
            return answer.text

    def _claim_next_and_work(self) -> None:
        with self.client.post(
            "/queue/claim-next/",
            headers=self._csrf_header(),
            name="/queue/claim-next/",
            allow_redirects=False,
            catch_response=True,
        ) as answer:
            location = _expect_redirect(answer, "/")
        held_from = time.monotonic()
        found = _MENTION_PATH.search(location or "")
        if found is None:  # nothing left to claim: back on the queue
            self._queue_page()
            return
        mention_id = int(found.group(1))
        page = self._open(location, name="/mentions/[id]/")
        time.sleep(THINK_SECONDS)
        action = random.choices([a for a, _ in ACTIONS], weights=[w for _, w in ACTIONS])[0]
        if action == "reply" and not _REPLY_TEXT.search(page):
            action = "release"  # the page offered no reply box (another platform)
        held_until = time.monotonic()  # the hold ends when the agent lets go, not after
        if action == "reply":
            self._reply(mention_id, page)
        else:
            with self.client.post(
                f"/mentions/{mention_id}/{action}/",
                headers=self._csrf_header(),
                name=f"/mentions/[id]/{action}/",
                allow_redirects=False,
                catch_response=True,
            ) as answer:
                _expect_redirect(answer, "/queue/")
        HOLDS.append((mention_id, self.username, held_from, held_until))
        self._queue_page()

    def _reply(self, mention_id: int, page: str) -> None:
        text = html.unescape(_REPLY_TEXT.search(page).group(1)).strip()  # type: ignore[union-attr]
        opened = _OPENED_AT.search(page)
        data = {
            "text": text or "Thanks for reaching out: we are on it.",
            "opened_at": html.unescape(opened.group(1)) if opened else "",
            "csrfmiddlewaretoken": self._csrf(),
        }
        path = f"/mentions/{mention_id}/reply/"
        with self.client.post(
            path,
            data=data,
            name="/mentions/[id]/reply/",
            allow_redirects=False,
            catch_response=True,
        ) as answer:
            if answer.status_code == 422:  # a second look asked for: send it as it is
                answer.success()
                needs_reason = True
            else:
                _expect_redirect(answer, "/queue/")
                needs_reason = False
        if needs_reason:
            with self.client.post(
                path,
                data={**data, "override_reason": OVERRIDE_REASON},
                name="/mentions/[id]/reply/ (with a reason)",
                allow_redirects=False,
                catch_response=True,
            ) as answer:
                _expect_redirect(answer, "/queue/")

    # -- helpers --

    def _read_rows(self, page: str) -> None:
        found = _ROWS_URL.search(page)
        if found:
            self.poll_url = html.unescape(found.group(1))
        self.queue_mentions = [path for path, _ in _MENTION_LINK.findall(page)]

    def _csrf(self) -> str:
        return self.client.cookies.get("csrftoken", "")

    def _csrf_header(self) -> dict[str, str]:
        return {"X-CSRFToken": self._csrf()}


def _expect_redirect(answer: ResponseContextManager, prefix: str) -> str:
    """A 302 whose Location starts with `prefix` is a success; its Location is returned."""
    location = answer.headers.get("Location", "")
    if answer.status_code != 302 or not location.startswith(prefix):
        answer.failure(f"expected a redirect to {prefix}..., got {answer.status_code} {location}")
        return ""
    return location
