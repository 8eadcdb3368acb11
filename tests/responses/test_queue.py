from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from listening.models import Mention
from listening.services.keywords import keyword_create
from responses.queue_rows import mention_url_prefix, queue_row, time_ago
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db


def test_the_queue_lists_open_mentions_most_urgent_first_or_by_time(client, agent, brand):
    now = datetime.now(UTC)
    older = make_mention(
        brand=brand, text="older post about Northwind", posted_at=now - timedelta(hours=2)
    )
    newer = make_mention(brand=brand, text="newer post about Northwind", posted_at=now)
    angry = make_mention(
        brand=brand,
        text="Northwind lost my order, this is awful and I am furious",
        author=make_author(followers=48_000),
        posted_at=now - timedelta(minutes=30),
    )
    make_mention(brand=brand, text="already answered", status="replied")
    client.force_login(agent)

    def order(**params):
        html = client.get(reverse("responses:queue"), params).content.decode()
        assert "already answered" not in html
        return sorted((older, newer, angry), key=lambda m: html.index(m.text))

    # The angry post with reach has a head start of over two hours: ahead of the older one.
    assert order() == [angry, older, newer]
    assert order(order="newest") == [newer, angry, older]
    assert order(order="oldest") == [older, angry, newer]


def test_each_row_says_why_it_sits_where_it_does(client, agent, brand):
    make_mention(
        brand=brand,
        text="@NorthwindHelp why was I charged twice? Terrible.",
        author=make_author(followers=48_200),
        posted_at=datetime.now(UTC) - timedelta(minutes=34, seconds=20),
    )
    client.force_login(agent)
    html = client.get(reverse("responses:queue")).content.decode()
    assert (
        "negative −0.60 · 48k followers · asks a question · waiting 34 min of a 30 min target"
        in html
    )


def test_filters_narrow_the_queue(client, agent, brand):
    beans = keyword_create(brand=brand, query="beans", poll_interval_seconds=60)
    angry = make_mention(brand=brand, text="This is awful, I hate the new cups", keyword=beans)
    happy = make_mention(brand=brand, text="I love the new cups, wonderful!", keyword=beans)
    other = make_mention(brand=brand, text="I hate waiting in line")
    client.force_login(agent)

    html = client.get(reverse("responses:queue"), {"sentiment": "negative"}).content.decode()
    assert angry.text in html and other.text in html and happy.text not in html

    html = client.get(
        reverse("responses:queue"), {"sentiment": "negative", "keyword": beans.pk}
    ).content.decode()
    assert angry.text in html and other.text not in html and happy.text not in html

    html = client.get(reverse("responses:queue"), {"status": "replied"}).content.decode()
    assert "Nothing waiting" in html


def test_the_self_refreshing_part_returns_only_the_rows(client, agent, brand):
    mention = make_mention(brand=brand, text="fresh mention of Northwind Coffee")
    client.force_login(agent)

    response = client.get(
        reverse("responses:queue"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="queue-rows"
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="queue-rows"')
    assert 'hx-trigger="every 1s"' in html
    assert mention.text in html
    assert "<html" not in html and "Mention queue" not in html


def test_platform_text_is_escaped(client, agent, brand):
    make_mention(
        brand=brand,
        text='<script>alert("x")</script> <img src=x onerror=alert(1)>',
        author=make_author(username="mallory", name="<b>Mallory</b>"),
    )
    client.force_login(agent)
    html = client.get(reverse("responses:queue")).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>Mallory" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_the_poll_gets_nothing_back_until_a_mention_changes(client, agent, brand):
    mention = make_mention(brand=brand, text="@NorthwindHelp is anyone there")
    client.force_login(agent)
    rows = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "queue-rows"}
    first = client.get(reverse("responses:queue"), **rows).content.decode()
    poll_url = re.search(r'hx-get="([^"]+)"', first).group(1).replace("&amp;", "&")

    unchanged = client.get(poll_url, **rows)
    assert unchanged.status_code == 204 and unchanged.content == b""

    Mention.objects.filter(pk=mention.pk).update(status="spam")
    changed = client.get(poll_url, **rows)
    assert changed.status_code == 200
    assert "Nothing waiting" in changed.content.decode()


def test_a_page_and_its_poll_fingerprint_the_same_rows(client, agent, other_agent, brand):
    # The page fingerprints the rows it loaded; the poll asks one narrow query: they agree.
    now = datetime.now(UTC)
    make_mention(brand=brand, text="@NorthwindHelp is anyone there")
    make_mention(
        brand=brand,
        text="@NorthwindHelp my cup leaks",
        status="claimed",
        claimed_by=other_agent,
        claim_expires_at=now + timedelta(minutes=10),
    )
    client.force_login(agent)
    rows = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "queue-rows"}
    page = client.get(reverse("responses:queue")).content.decode()
    poll_url = re.search(r'hx-get="([^"]+since=[^"]+)"', page).group(1).replace("&amp;", "&")

    with CaptureQueriesContext(connection) as poll:
        assert client.get(poll_url, **rows).status_code == 204
    assert sum('FROM "listening_mention"' in query["sql"] for query in poll) == 1


def test_a_page_runs_the_same_queries_however_many_rows_it_shows(client, agent, other_agent, brand):
    beans = keyword_create(brand=brand, query="beans", poll_interval_seconds=60)
    client.force_login(agent)

    def queries() -> int:
        with CaptureQueriesContext(connection) as page:
            client.get(reverse("responses:queue"))
        return len(page)

    make_mention(brand=brand, text="the first one")
    one_row = queries()
    now = datetime.now(UTC)
    for n in range(5):
        make_mention(brand=brand, text=f"about beans {n}", keyword=beans)
        make_mention(
            brand=brand,
            text=f"held {n}",
            status="claimed",
            claimed_by=other_agent,
            claim_expires_at=now + timedelta(minutes=n - 2),
        )
    assert queries() == one_row <= 10


def _row(html: str, mention: Mention) -> str:
    """The mention's row in `html`, runs of ASCII whitespace made one space (not the no-break
    spaces of "4 weeks, 1 day ago")."""
    row = re.search(rf'<article [^>]*id="mention-{mention.pk}".*?</article>', html, re.DOTALL)
    assert row, f"no row for mention {mention.pk}"
    return re.sub(r"[ \t\n]+", " ", row.group(0))


def test_the_row_the_claim_view_swaps_in_is_the_row_the_queue_shows(
    client, rf, agent, other_agent, brand
):
    # The queue page loops over its rows; the claim view renders one row from a dict of the
    # same values. Every state of a row, and values the formatting changes.
    now = datetime.now(UTC)
    beans = keyword_create(brand=brand, query="beans", poll_interval_seconds=60)
    # Whole minutes and a half: the "waiting" minute cannot turn between the two renders.
    ago = timedelta(days=40, hours=3, seconds=30)
    new = make_mention(
        brand=brand,
        text="Northwind lost my order, this is awful <and> I am furious",
        author=make_author(username="ann", name="Ann & Co", followers=1_234_567),
        keyword=beans,
        posted_at=now - ago,
    )
    Mention.objects.filter(pk=new.pk).update(amplification_count=3, platform="reddit")
    mine = make_mention(
        brand=brand,
        text="I love the new cups",
        posted_at=now - timedelta(hours=5, seconds=30),
        status="claimed",
        claimed_by=agent,
        claim_expires_at=now + timedelta(minutes=10),
    )
    theirs = make_mention(
        brand=brand,
        text="where is my order?",
        posted_at=now - timedelta(minutes=7, seconds=30),
        status="claimed",
        claimed_by=other_agent,
        claim_expires_at=now + timedelta(minutes=10),
    )
    lapsed = make_mention(
        brand=brand,
        text="still waiting on that refund",
        posted_at=now - timedelta(days=1, seconds=30),
        status="claimed",
        claimed_by=other_agent,
        claim_expires_at=now - timedelta(minutes=1),
    )
    replied = make_mention(brand=brand, text="thanks, all sorted", status="replied")
    client.force_login(agent)
    queue = client.get(reverse("responses:queue")).content.decode()
    queue += client.get(reverse("responses:queue"), {"status": "replied"}).content.decode()
    request = rf.get(reverse("responses:queue"))
    request.user = agent

    for mention in Mention.objects.select_related("author", "keyword", "claimed_by").filter(
        pk__in=[new.pk, mine.pk, theirs.pk, lapsed.pk, replied.pk]
    ):
        row = queue_row(
            mention, now=timezone.now(), viewer_id=agent.pk, url_prefix=mention_url_prefix()
        )
        swapped = render_to_string(
            "responses/queue.html#mention-row", row._asdict(), request=request
        )
        assert _row(swapped, mention) == _row(queue, mention)
    assert "1,234,567 followers" in queue and "↻ 3" in queue and "Reddit" in queue
    assert "<strong>Ann &amp; Co</strong>" in _row(queue, new)
    assert "awful &lt;and&gt; I am furious" in _row(queue, new)
    assert ">40 days ago</time>" in _row(queue, new)
    assert f'data-url="{reverse("responses:mention", args=[new.pk])}"' in queue
    assert "Claimed by you" in _row(queue, mine) and "Claim</button>" not in _row(queue, mine)
    assert f"Claimed by {other_agent.username}" in _row(queue, theirs)
    assert "Claim</button>" not in _row(queue, theirs)
    assert "Claim lapsed" in _row(queue, lapsed) and "Claim</button>" in _row(queue, lapsed)
    assert ">Replied</span>" in _row(queue, replied)
    assert "Claim</button>" not in _row(queue, replied)


def test_claiming_posts_the_pages_one_csrf_token(agent, brand):
    mentions = [make_mention(brand=brand, text=f"question {n} about Northwind") for n in range(3)]
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)
    page = client.get(reverse("responses:queue")).content.decode()
    rows = client.get(
        reverse("responses:queue"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="queue-rows"
    ).content.decode()
    assert "csrfmiddlewaretoken" not in rows
    claim_form = re.search(r'<form id="claim-form" method="post"[^>]*>(.*?)</form>', page).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', claim_form).group(1)
    header_token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    first, second = (reverse("responses:claim", args=[m.pk]) for m in mentions[:2])
    assert f'form="claim-form" formaction="{first}"' in page and f'hx-post="{first}"' in page

    # Without JavaScript: the button submits the page's one form to its own formaction.
    response = client.post(first, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert response.url == reverse("responses:mention", args=[mentions[0].pk])
    # With htmx: the token goes as a header (hx-headers on <body>), the row comes back.
    response = client.post(second, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=header_token)
    assert response.status_code == 200 and "Claimed by you" in response.content.decode()
    assert client.post(reverse("responses:claim", args=[mentions[2].pk])).status_code == 403
    assert [m.claimed_by for m in Mention.objects.order_by("pk")] == [agent, agent, None]


@pytest.mark.parametrize(
    ("ago", "text"),
    [
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=1), "1 min ago"),
        (timedelta(minutes=59, seconds=59), "59 min ago"),
        (timedelta(hours=1), "1 h ago"),
        (timedelta(hours=23, minutes=59), "23 h ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=59), "59 days ago"),
        (timedelta(days=60), "2 months ago"),
        (timedelta(days=729), "24 months ago"),
        (timedelta(days=730), "2 years ago"),
    ],
)
def test_a_rows_age_reads_at_a_glance(ago, text):
    now = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    assert time_ago(now - ago, now=now) == text
