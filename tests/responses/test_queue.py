from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from listening.models import Mention
from listening.services.keywords import keyword_create
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
