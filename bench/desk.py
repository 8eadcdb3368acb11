"""A busy desk written straight into PostgreSQL: a million mentions in under a minute.

The rows are what Earshot itself would store, built from its own parts: texts from the demo
generator, scored by VADER through `sentiment_score`, urgency and reasons from
`mention_priority`. Only the combination happens in SQL (`INSERT ... SELECT` over
`generate_series`), so no row crosses the wire. Followers come in a few fixed levels so that
each (text, followers) pair's priority can be computed in Python once and joined in.

Uses the ORM at import: import it only after `django.setup()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone
from psycopg2.extras import Json, execute_values

from config.roles import AGENT
from listening.models import OPEN_STATUSES, Author, Brand, Mention, MentionStatus
from listening.services.keywords import keyword_create
from listening.services.priority import PriorityFacts, mention_priority
from listening.services.sentiment import sentiment_score
from listening.simulators.generator import generate_mentions
from responses.services.claims import claimable

BRAND_NAME = "Bench Coffee"
BRAND_HANDLE = "BenchCoffee"
KEYWORD_QUERIES = ('"Bench Coffee"', "@BenchCoffee", '"Bench Coffee" refund')
TEXT_POOL = 1_000
# (followers, weight): most authors are small, a few are large accounts.
FOLLOWER_LEVELS = (
    (12, 20),
    (45, 25),
    (120, 20),
    (400, 14),
    (1_500, 8),
    (6_000, 6),
    (25_000, 4),
    (120_000, 2),
    (1_500_000, 1),
)
AUTHORS_PER_MENTION = 0.2
PERIOD = timedelta(days=30)
CLOSED_AS_REPLIED = 0.7  # the rest of the closed ones needed no reply
LAPSED_SHARE = 0.2  # of the claimed ones, leases that ran out
MENTION_ID_BASE = 1_900_000_000_000_000_000
AUTHOR_ID_BASE = 700_000_000

_TEXTS = """
    CREATE TEMP TABLE bench_text (
        n int PRIMARY KEY, text text, compound float8, positive float8, neutral float8,
        negative float8, label text
    )
"""
_PRIORITIES = """
    CREATE TEMP TABLE bench_priority (
        n int, followers int, head_seconds float8, reasons jsonb, PRIMARY KEY (n, followers)
    )
"""
_AUTHORS = f"""
    INSERT INTO {Author._meta.db_table}
        (platform, external_id, username, name, followers_count, verified, updated_at)
    SELECT 'x', ({AUTHOR_ID_BASE} + f.a)::text, 'fan' || f.a, 'Fan ' || f.a, f.followers,
           f.followers > 100000 AND f.r_verified < 0.5, now()
      FROM (
            SELECT a, (%(levels)s::int[])[1 + floor(random() * %(level_count)s)::int] AS followers,
                   random() AS r_verified
              FROM generate_series(1, %(authors)s) AS a
           ) AS f
"""
# Ids grow with posted_at, as when a poller stores posts as they come. `r_*` are the draws.
_MENTIONS = f"""
    INSERT INTO {Mention._meta.db_table}
        (platform, external_id, brand_id, keyword_id, author_id, text, lang, posted_at,
         conversation_id, in_reply_to_user_id, referenced_posts, public_metrics,
         sentiment_compound, sentiment_positive, sentiment_neutral, sentiment_negative,
         sentiment_label, status, claimed_by_id, claimed_at, claim_expires_at,
         urgency_at, priority_reasons, fetched_at)
    SELECT 'x', ({MENTION_ID_BASE} + g.i)::text, %(brand)s,
           (%(keywords)s::bigint[])[1 + mod(g.i, %(keyword_count)s)], a.id,
           t.text, 'en', g.posted_at, ({MENTION_ID_BASE} + g.i)::text, '', '[]'::jsonb,
           jsonb_build_object('retweet_count', mod(g.i, 7), 'reply_count', mod(g.i, 3),
                              'like_count', mod(g.i, 40), 'quote_count', 0),
           t.compound, t.positive, t.neutral, t.negative, t.label,
           s.status,
           CASE WHEN s.status <> %(new)s
                THEN (%(agents)s::int[])[1 + floor(g.r_agent * %(agent_count)s)::int] END,
           CASE WHEN s.status = %(claimed)s AND s.lapsed THEN now() - interval '25 minutes'
                WHEN s.status = %(claimed)s THEN now() - interval '5 minutes'
                WHEN s.status <> %(new)s THEN g.posted_at + interval '20 minutes' END,
           CASE WHEN s.status = %(claimed)s AND s.lapsed THEN now() - interval '10 minutes'
                WHEN s.status = %(claimed)s THEN now() + interval '10 minutes' END,
           g.posted_at - make_interval(secs => p.head_seconds), p.reasons,
           g.posted_at + interval '30 seconds'
      FROM (
            SELECT i, now() - make_interval(secs => (%(mentions)s - i) * %(step)s) AS posted_at,
                   random() AS r_text, random() AS r_author, random() AS r_status,
                   random() AS r_agent, random() AS r_lapse
              FROM generate_series(1, %(mentions)s) AS i
           ) AS g
     CROSS JOIN LATERAL (
            SELECT CASE WHEN g.r_status < %(claimed_share)s THEN %(claimed)s
                        WHEN g.r_status < %(open_share)s THEN %(new)s
                        WHEN g.r_status < %(replied_below)s THEN %(replied)s
                        ELSE %(no_reply_needed)s END AS status,
                   g.r_lapse < %(lapsed_share)s AS lapsed
           ) AS s
      JOIN bench_text AS t ON t.n = 1 + floor(g.r_text * %(text_count)s)::int
      -- Squaring the draw: a few authors post often, most once or twice.
      JOIN {Author._meta.db_table} AS a
        ON a.id = %(first_author)s + floor(g.r_author * g.r_author * %(authors)s)::int
      JOIN bench_priority AS p ON p.n = t.n AND p.followers = a.followers_count
"""


@dataclass(frozen=True)
class Desk:
    brand_id: int
    keyword_ids: list[int]
    mentions: int
    open: int
    claimable: int
    seconds: float


def agents_create(*, prefix: str, count: int) -> list[int]:
    """`count` agents (unusable passwords: the benchmark logs them in with `force_login`)."""
    user_model = get_user_model()
    group = Group.objects.get(name=AGENT)
    ids = []
    for number in range(1, count + 1):
        user = user_model.objects.create_user(username=f"{prefix}{number:02d}", password=None)
        user.groups.add(group)
        ids.append(user.pk)
    return ids


def desk_fill(
    *,
    mentions: int,
    open_share: float,
    claimed_share: float,
    agent_ids: list[int],
    seed: int = 1,
    period: timedelta = PERIOD,
) -> Desk:
    """Replace every brand, keyword, author and mention with a generated desk.

    The mentions are posted evenly over the `period` up to now (a month unless told).

    `open_share` of the mentions are open, and `claimed_share` of those are claimed by one of
    `agent_ids` (a fifth of those claims lapsed); closed ones were replied to or needed no
    reply, and name an agent in `claimed_by` as Earshot records who closed them. Open
    mentions are spread over the whole month, a backlog rather than only the newest posts.
    Ends with VACUUM ANALYZE, as autovacuum would have done on a table this old.
    """
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"TRUNCATE {Brand._meta.db_table}, {Author._meta.db_table} RESTART IDENTITY CASCADE"
        )
    brand = Brand.objects.create(name=BRAND_NAME, x_handle=BRAND_HANDLE)
    keyword_ids = [
        keyword_create(brand=brand, query=query, poll_interval_seconds=60).pk
        for query in KEYWORD_QUERIES
    ]
    texts = _text_rows(seed)
    authors = max(1, round(mentions * AUTHORS_PER_MENTION))
    levels = [followers for followers, weight in FOLLOWER_LEVELS for _ in range(weight)]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_text, bench_priority")
        cursor.execute(_TEXTS)
        cursor.execute(_PRIORITIES)
        execute_values(cursor, "INSERT INTO bench_text VALUES %s", texts)
        execute_values(
            cursor, "INSERT INTO bench_priority VALUES %s", _priority_rows(texts), page_size=1000
        )
        # random() draws are repeatable from here on: same seed, same desk.
        cursor.execute("SELECT setseed(%s)", [1 / (1 + seed)])
        cursor.execute(_AUTHORS, {"authors": authors, "levels": levels, "level_count": len(levels)})
        cursor.execute(f"SELECT min(id) FROM {Author._meta.db_table}")
        first_author = cursor.fetchone()[0]
        cursor.execute(
            _MENTIONS,
            {
                "brand": brand.pk,
                "keywords": keyword_ids,
                "keyword_count": len(keyword_ids),
                "agents": agent_ids,
                "agent_count": len(agent_ids),
                "mentions": mentions,
                "step": period.total_seconds() / mentions,
                "claimed_share": open_share * claimed_share,
                "open_share": open_share,
                "replied_below": open_share + (1 - open_share) * CLOSED_AS_REPLIED,
                "lapsed_share": LAPSED_SHARE,
                "text_count": len(texts),
                "first_author": first_author,
                "authors": authors,
                "new": MentionStatus.NEW.value,
                "claimed": MentionStatus.CLAIMED.value,
                "replied": MentionStatus.REPLIED.value,
                "no_reply_needed": MentionStatus.NO_REPLY_NEEDED.value,
            },
        )
        stored = cursor.rowcount
        cursor.execute("DROP TABLE bench_text, bench_priority")
        cursor.execute(f"VACUUM ANALYZE {Author._meta.db_table}, {Mention._meta.db_table}")
    if stored != mentions:
        raise RuntimeError(f"the desk holds {stored} mentions, not {mentions}")
    # Counted with the app's own definitions of open and claimable.
    open_count = Mention.objects.filter(status__in=OPEN_STATUSES).count()
    claimable_count = Mention.objects.filter(claimable(timezone.now())).count()
    return Desk(
        brand_id=brand.pk,
        keyword_ids=keyword_ids,
        mentions=stored,
        open=open_count,
        claimable=claimable_count,
        seconds=time.perf_counter() - start,
    )


def _text_rows(seed: int) -> list[tuple[object, ...]]:
    generated = generate_mentions(
        brand_name=BRAND_NAME, brand_handle=BRAND_HANDLE, count=TEXT_POOL, seed=seed
    )
    rows = []
    for n, mention in enumerate(generated, start=1):
        score = sentiment_score(text=mention["text"])
        rows.append(
            (
                n,
                mention["text"],
                score.compound,
                score.positive,
                score.neutral,
                score.negative,
                str(score.label),
            )
        )
    return rows


def _priority_rows(texts: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    rows = []
    for n, text, compound, _pos, _neu, _neg, label in texts:
        for followers, _weight in FOLLOWER_LEVELS:
            priority = mention_priority(
                PriorityFacts(
                    compound=compound,
                    label=label,
                    followers=followers,
                    text=text,
                    earlier_complaints_this_week=0,
                    earlier_positive=0,
                )
            )
            rows.append((n, followers, priority.head_start.total_seconds(), Json(priority.reasons)))
    return rows
