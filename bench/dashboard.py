"""The report benchmark: how long a supervisor waits for the response-time dashboard.

On a desk of 1M mentions over a year (--quick: 100k) filled by `bench.desk`, with 300k sent
replies (--quick: 30k) written straight into PostgreSQL by one INSERT ... SELECT, and some
replied mentions resolved:

- the real `report` view through Django's test `Client`, logged in as a supervisor, for the
  default period (the last 7 days against the 7 before) and for the last 30 days: server
  time per request, p50 and p95 over 10 requests after 2 warm-up ones;
- `manage.py report --json` for the same periods, p50 over as many runs;
- EXPLAIN (ANALYZE, BUFFERS) of the per-mention facts query every figure comes from.

Uses the ORM at import: import it only after `django.setup()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from io import StringIO
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bench.desk import agents_create, desk_fill
from bench.explain import explain
from bench.report import Figure, Goal, percentile
from config.roles import SUPERVISOR
from listening.models import Mention, MentionStatus
from responses.models import Reply, ReplyOrigin, ReplyStatus
from responses.services.analytics import Period, _facts_sql, business_calendar, default_period

MENTIONS, QUICK_MENTIONS = 1_000_000, 100_000
REPLIES, QUICK_REPLIES = 300_000, 30_000
# A year of a busy brand's mentions (2,700 a day, 820 replies a day): the report's default
# week then holds 19k mentions against 19k the week before, its 30 days 82k against 82k.
DESK_PERIOD = timedelta(days=365)
OPEN_SHARE = 0.02
CLAIMED_SHARE = 0.25
RESOLVED_SHARE = 0.4  # of the replied mentions that got a reply here
AGENTS = 20
PERIOD_DAYS = (7, 30)
WARM_UP, REQUESTS = 2, 10
GOAL_MS = 300.0
STAT_MARKER = b'id="stat-mentions"'

# Replies to a random `replies` of the replied mentions: mostly sent from Earshot by the agent
# who holds the mention, some found on the platform (no agent), a few marked handled. First
# response times are log-uniform from 30 s to 2 days; a fifth of them get a later second reply.
_REPLIES = f"""
    INSERT INTO {Reply._meta.db_table}
        (mention_id, agent_id, origin, text, status, is_dm_invite, external_id, posted_at,
         outcome_unknown, attempts, warnings_overridden, override_reason, error, review_note,
         text_as_written, created_at, updated_at)
    SELECT c.id,
           CASE WHEN c.origin = %(platform)s THEN NULL ELSE c.agent_id END,
           c.origin, 'Thanks for telling us', %(sent)s, false,
           CASE WHEN c.origin = %(marked)s THEN '' ELSE 'r' || c.id || '-' || c.n END,
           c.posted_at, false, 1, '[]'::jsonb, '', '', '', '', c.posted_at, c.posted_at
      FROM (
            SELECT m.id, m.claimed_by_id AS agent_id, s.n,
                   CASE WHEN m.r_origin < 0.85 THEN %(earshot)s
                        WHEN m.r_origin < 0.95 THEN %(platform)s ELSE %(marked)s END AS origin,
                   m.posted_at + make_interval(secs => 30 * power(5760, m.r_delay))
                       + make_interval(hours => 3 * (s.n - 1)) AS posted_at
              FROM (
                    SELECT id, claimed_by_id, posted_at, random() AS r_origin,
                           random() AS r_delay, random() AS r_second
                      FROM {Mention._meta.db_table}
                     WHERE status = %(replied)s
                     ORDER BY random()
                     LIMIT %(mentions)s
                   ) AS m
             CROSS JOIN LATERAL generate_series(1, CASE WHEN m.r_second < 0.2 THEN 2 ELSE 1 END)
                   AS s(n)
           ) AS c
     LIMIT %(replies)s
"""
_RESOLVE = f"""
    UPDATE {Mention._meta.db_table} AS m
       SET status = %(resolved)s, claimed_at = r.first + interval '2 hours'
      FROM (
            SELECT mention_id, min(posted_at) AS first
              FROM {Reply._meta.db_table}
             GROUP BY mention_id
           ) AS r
     WHERE m.id = r.mention_id AND m.status = %(replied)s AND random() < %(share)s
"""


def replies_fill(*, replies: int) -> int:
    """Sent replies to replied mentions, then resolve a share of those; how many replies."""
    with connection.cursor() as cursor:
        cursor.execute(
            _REPLIES,
            {
                # Drawn from as many mentions as replies; the LIMIT keeps exactly `replies`.
                "mentions": replies,
                "replies": replies,
                "sent": ReplyStatus.SENT.value,
                "earshot": ReplyOrigin.EARSHOT.value,
                "platform": ReplyOrigin.PLATFORM.value,
                "marked": ReplyOrigin.MARKED.value,
                "replied": MentionStatus.REPLIED.value,
            },
        )
        stored = cursor.rowcount
        cursor.execute(
            _RESOLVE,
            {
                "resolved": MentionStatus.RESOLVED.value,
                "replied": MentionStatus.REPLIED.value,
                "share": RESOLVED_SHARE,
            },
        )
        cursor.execute(f"VACUUM ANALYZE {Reply._meta.db_table}, {Mention._meta.db_table}")
    if stored != replies:
        raise RuntimeError(f"stored {stored} replies, not {replies}")
    return stored


def run(*, quick: bool, seed: int, progress: Callable[[str], None]) -> dict[str, Any]:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    mentions, replies = (QUICK_MENTIONS, QUICK_REPLIES) if quick else (MENTIONS, REPLIES)
    agent_ids = agents_create(prefix="report-agent-", count=AGENTS)
    desk = desk_fill(
        mentions=mentions,
        open_share=OPEN_SHARE,
        claimed_share=CLAIMED_SHARE,
        agent_ids=agent_ids,
        seed=seed,
        period=DESK_PERIOD,
    )
    start = time.perf_counter()
    stored = replies_fill(replies=replies)
    progress(
        f"dashboard: desk of {desk.mentions:,} mentions in {desk.seconds:.1f}s, "
        f"{stored:,} replies in {time.perf_counter() - start:.1f}s"
    )
    client = _supervisor_client()
    periods: dict[str, Any] = {}
    for days in PERIOD_DAYS:
        period = default_period(days=days)
        params = {"since": period.first_day.isoformat(), "until": period.last_day.isoformat()}
        page = [_timed(partial(_get, client, params)) for _ in range(WARM_UP + REQUESTS)]
        command = [_timed(partial(_report_json, params)) for _ in range(WARM_UP + REQUESTS)]
        page, command = page[WARM_UP:], command[WARM_UP:]
        facts = _explain_facts(period)
        periods[str(days)] = {
            "mentions": Mention.objects.filter(
                posted_at__gte=period.starts_at, posted_at__lt=period.ends_at
            ).count(),
            "page_p50_ms": percentile(page, 50) * 1000,
            "page_p95_ms": percentile(page, 95) * 1000,
            "json_p50_ms": percentile(command, 50) * 1000,
            "json_p95_ms": percentile(command, 95) * 1000,
            "explain": facts,
        }
        progress(
            f"dashboard {days} days ({periods[str(days)]['mentions']:,} mentions and as many "
            f"before): page p50 {periods[str(days)]['page_p50_ms']:.0f} ms, --json p50 "
            f"{periods[str(days)]['json_p50_ms']:.0f} ms, facts query "
            f"{facts['execution_ms']:.0f} ms"
        )
    return {
        "benchmark": "dashboard",
        "mentions": desk.mentions,
        "replies": stored,
        "requests": REQUESTS,
        "warm_up": WARM_UP,
        "periods": periods,
    }


def figures(results: dict[str, Any]) -> list[Figure]:
    size = _size(results["mentions"])
    rows = []
    for days, times in results["periods"].items():
        # The goal is for the page a supervisor opens first; 30 days is shown for scale.
        goal = Goal(at_most=GOAL_MS) if days == str(PERIOD_DAYS[0]) else None
        label = f"report, {size} mentions over a year, last {days} days"
        rows += [
            Figure(f"{label}: page p50", times["page_p50_ms"], "ms", goal),
            Figure(f"{label}: page p95", times["page_p95_ms"], "ms"),
            Figure(f"{label}: report --json p50", times["json_p50_ms"], "ms", goal),
        ]
    return rows


def notes(results: dict[str, Any]) -> list[str]:
    lines = []
    for days, times in results["periods"].items():
        plan = times["explain"]
        indexes = sorted(set(_index_names(plan["plan"])))
        lines.append(
            f"report, last {days} days: the facts query took {plan['execution_ms']:.0f} ms, "
            f"{plan['costliest_node_ms']:.0f} ms of it in {plan['costliest_node']}; indexes "
            f"used: {', '.join(indexes) or 'none'}"
        )
    return lines


def _index_names(plan: str) -> list[str]:
    names = []
    for line in plan.splitlines():
        if " using " in line and ("Index" in line or "Bitmap" in line):
            names.append(line.split(" using ", 1)[1].split()[0])
    return names


def _size(mentions: int) -> str:
    return f"{mentions // 1_000_000}M" if mentions >= 1_000_000 else f"{mentions // 1_000}k"


def _supervisor_client() -> Client:
    user = get_user_model().objects.create_user(username="report-supervisor", password=None)
    user.groups.add(Group.objects.get(name=SUPERVISOR))
    client = Client()
    client.force_login(user)
    return client


def _get(client: Client, params: dict[str, str]) -> None:
    response = client.get(reverse("responses:report"), params)
    if response.status_code != 200 or STAT_MARKER not in response.content:
        raise RuntimeError(f"the report answered {response.status_code} without its figures")


def _report_json(params: dict[str, str]) -> None:
    out = StringIO()
    call_command("report", "--json", "--since", params["since"], "--until", params["until"],
                 stdout=out)  # fmt: skip
    if '"mentions"' not in out.getvalue():
        raise RuntimeError("report --json printed no figures")


def _timed(work: Callable[[], None]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _explain_facts(period: Period) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the facts query of both periods, as the dashboard runs it."""
    previous = period.previous
    sql, params = _facts_sql(
        business_calendar(),
        starts_at=previous.starts_at,
        ends_at=period.ends_at,
        current_from=period.starts_at,
        now=timezone.now(),
    )
    with connection.cursor() as cursor:
        bound = cursor.mogrify(sql, params).decode()
        # As the dashboard runs it (analytics._tune_for_reports), for this session only.
        cursor.execute("SET jit = off")
        cursor.execute("SET work_mem = '64MB'")
    try:
        return explain(bound)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET jit")
            cursor.execute("RESET work_mem")
