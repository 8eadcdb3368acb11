"""The keyword studio: live preview, one-off search, volume and X cost, pause / resume and
routing to a team."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from listening.models import (
    Author,
    Brand,
    Mention,
    MentionStatus,
    Platform,
    PollCursor,
    RateBudget,
    Source,
    Team,
    TrackedKeyword,
)
from listening.query import parse_query
from listening.selectors import x_monthly_cost
from listening.services.budgets import budget_for_source, budget_for_x, budget_state
from listening.services.keywords import (
    TeamOfAnotherBrand,
    keyword_create,
    keyword_route,
)
from listening.services.polling import keyword_poll, poll_claim_due
from listening.simulators.hackernews_api import HackerNewsApiSimulator
from listening.studio_selectors import (
    PREVIEW_SCAN_LIMIT,
    keyword_preview,
    sql_prefilter,
    x_cost_estimate,
)
from tests.conftest import customer
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def preview(client, brand, query, **extra):
    return client.get(
        reverse("listening:keyword-preview"),
        {"brand": brand.pk, "query": query, "poll_interval_seconds": 60, **extra},
        **HTMX,
    )


def search(client, brand, query, **extra):
    return client.post(
        reverse("listening:keyword-search"),
        {"brand": brand.pk, "query": query, "poll_interval_seconds": 60, **extra},
        **HTMX,
    )


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


# --- live preview -------------------------------------------------------------------------


def test_the_preview_counts_the_brands_mentions_the_query_matches(admin_client, brand):
    now = datetime.now(UTC)
    make_mention(brand=brand, text="Northwind coffee is great", posted_at=now - timedelta(hours=3))
    make_mention(brand=brand, text="northwind, coffee! again", posted_at=now - timedelta(hours=2))
    make_mention(brand=brand, text="coffee at northwind: no", posted_at=now - timedelta(hours=1))
    make_mention(brand=brand, text="northwind coffee spam", posted_at=now - timedelta(hours=1))
    other = Brand.objects.create(name="Southwind Tea")
    make_mention(brand=other, text="northwind coffee too", posted_at=now)

    response = preview(admin_client, brand, '"northwind coffee" -spam')

    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page  # the fragment alone
    assert '<strong id="preview-matched">2</strong> of the 4 stored mentions' in page
    # Newest first; the phrase matched across punctuation, as on X.
    assert page.index("northwind, coffee! again") < page.index("Northwind coffee is great")
    assert "coffee at northwind" not in page
    assert "northwind coffee spam" not in page
    assert "northwind coffee too" not in page


def test_an_invalid_query_shows_the_parsers_message_instead(admin_client, brand):
    make_mention(brand=brand, text="coffee")

    page = preview(admin_client, brand, "coffee OR").content.decode()

    assert "OR needs a term on both sides (character 8)." in page
    assert "preview-matched" not in page


def test_a_query_the_source_cannot_run_is_explained(admin_client, brand):
    hacker_news = Source.objects.create(brand=brand, platform=Platform.HACKER_NEWS, name="HN")

    page = preview(admin_client, brand, "coffee OR tea", source=hacker_news.pk).content.decode()

    assert "Hacker News cannot run this query" in page
    assert "preview-matched" not in page


def test_the_preview_can_be_kept_to_the_last_30_days(admin_client, brand):
    now = datetime.now(UTC)
    make_mention(brand=brand, text="latte love", posted_at=now - timedelta(days=40))
    make_mention(brand=brand, text="latte again", posted_at=now - timedelta(days=2))

    everything = preview(admin_client, brand, "latte").content.decode()
    recent = preview(admin_client, brand, "latte", preview_days=30).content.decode()

    assert '<strong id="preview-matched">2</strong> of the 2 stored mentions' in everything
    assert (
        '<strong id="preview-matched">1</strong> of the 1 stored mention of Northwind Coffee '
        "from the last 30 days matches." in recent
    )
    assert "latte love" not in recent


def _bulk_mentions(brand: Brand, author: Author, texts_and_times: list[tuple[str, datetime]]):
    Mention.objects.bulk_create(
        Mention(
            platform="x",
            external_id=f"bulk-{n}",
            brand=brand,
            author=author,
            text=text,
            posted_at=posted_at,
            urgency_at=posted_at,
            sentiment_compound=0,
            sentiment_positive=0,
            sentiment_neutral=1,
            sentiment_negative=0,
            sentiment_label="neutral",
        )
        for n, (text, posted_at) in enumerate(texts_and_times)
    )


def test_the_preview_reads_only_the_newest_mentions_and_says_so(admin_client, brand):
    now = datetime.now(UTC)
    author = make_author()
    # Ten old matches, then more unrelated mentions than the preview reads.
    _bulk_mentions(
        brand,
        author,
        [("old espresso", now - timedelta(days=5, minutes=n)) for n in range(10)]
        + [(f"chatter {n}", now - timedelta(minutes=n)) for n in range(PREVIEW_SCAN_LIMIT)],
    )

    page = preview(admin_client, brand, "espresso").content.decode()

    assert '<strong id="preview-matched">0</strong> of the last 5,000 mentions' in page
    assert "Only the newest 5,000 are read" in page
    # With a smaller bound the selector reads fewer still; a wider one finds the old ones.
    query = parse_query("espresso OR chatter")
    assert keyword_preview(brand=brand, query=query, scan_limit=3).matched == 3
    wide = keyword_preview(brand=brand, query=query, scan_limit=PREVIEW_SCAN_LIMIT + 10)
    assert (wide.matched, wide.scanned, wide.limit_reached) == (5010, 5010, True)


def test_mentions_posted_at_the_same_moment_are_read_newest_id_first(brand):
    moment = datetime.now(UTC) - timedelta(hours=1)
    first, second, third = (
        make_mention(brand=brand, text=f"tie {n}", posted_at=moment) for n in range(3)
    )

    result = keyword_preview(brand=brand, query=parse_query("tie"), scan_limit=2)

    assert (result.scanned, result.matched) == (2, 2)
    assert [m.mention_id for m in result.newest] == [third.pk, second.pk]


def test_words_sql_cannot_fold_like_python_are_left_to_the_matcher(brand):
    make_mention(brand=brand, text="Wir sind in der Hauptstraße")
    make_mention(brand=brand, text="HAUPTSTRASSE 5")
    make_mention(brand=brand, text="Nebenweg")

    result = keyword_preview(brand=brand, query=parse_query("hauptstrasse"))

    assert (result.matched, result.scanned) == (2, 3)
    assert sql_prefilter(parse_query("hauptstrasse").root) is None


def test_the_sql_prefilter_only_narrows_by_what_every_match_contains():
    assert str(sql_prefilter(parse_query('"northwind coffee" -spam').root)) == (
        "(AND: ('text__icontains', 'northwind'), ('text__icontains', 'coffee'))"
    )
    assert str(sql_prefilter(parse_query("latte OR #outage").root)) == (
        "(OR: ('text__icontains', 'latte'), ('text__icontains', '#outage'))"
    )
    assert str(sql_prefilter(parse_query("latte OR from:NorthwindHelp -is:retweet").root)) == (
        "(OR: ('text__icontains', 'latte'), ('author__username__iexact', 'NorthwindHelp'), "
        "('author__username__iexact', '@NorthwindHelp'))"
    )
    # An alternative SQL cannot look for: no narrowing at all.
    assert sql_prefilter(parse_query("latte OR strasse").root) is None


def test_the_volume_and_x_cost_are_estimated_from_the_matches(admin_client, brand):
    now = datetime.now(UTC)
    for hours in (1, 20, 47):
        make_mention(brand=brand, text="mocha please", posted_at=now - timedelta(hours=hours))
    make_mention(brand=brand, text="unrelated", posted_at=now - timedelta(hours=72))

    result = keyword_preview(brand=brand, query=parse_query("mocha"), now=now)
    page = preview(admin_client, brand, "mocha", poll_interval_seconds=30).content.decode()

    # Three matches over the three days the four stored mentions cover.
    assert result.per_day == pytest.approx(1.0)
    estimate = x_cost_estimate(per_day=1.0, poll_interval_seconds=30)
    # 30 posts a month, each with its author: 30 x ($0.005 + $0.010).
    assert estimate.monthly_cost == x_monthly_cost(volume_per_hour=1 / 24) == Decimal("0.45")
    assert estimate.calls_per_month == 86_400
    # 86,400 calls of the 2,880 windows x 450 calls a month the credential may make.
    assert estimate.budget_percent == pytest.approx(100 * 86_400 / (2_880 * 450))
    assert "about <strong>1.0</strong> a day" in page
    assert "Projected X API cost: <strong>$0.45</strong> a month" in page
    assert "about 86,400 search calls a month: 6.7 %" in page


def test_no_x_cost_is_projected_for_other_platforms(admin_client, brand):
    mastodon = Source.objects.create(
        brand=brand, platform=Platform.MASTODON, name="m", base_url="https://mastodon.social"
    )
    make_mention(brand=brand, text="mocha")

    page = preview(admin_client, brand, "mocha", source=mastodon.pk).content.decode()

    assert '<strong id="preview-matched">1</strong>' in page
    assert "Projected X API cost" not in page


def test_the_query_box_asks_for_the_preview_as_the_admin_types(admin_client, keyword):
    for url in (
        reverse("listening:keywords"),
        reverse("listening:keyword-edit", args=[keyword.pk]),
    ):
        page = admin_client.get(url).content.decode()
        box = next(
            tag for tag in page.split("<") if tag.startswith("input") and 'name="query"' in tag
        )
        assert 'hx-trigger="keyup changed delay:400ms"' in box
        assert f'hx-get="{reverse("listening:keyword-preview")}"' in box
        assert 'hx-target="#keyword-preview"' in box
        assert 'id="keyword-preview"' in page
        assert "<script>" not in page


def test_without_javascript_the_preview_is_a_page_of_its_own(admin_client, brand):
    make_mention(brand=brand, text="cortado")

    response = admin_client.get(
        reverse("listening:keyword-preview"), {"brand": brand.pk, "query": "cortado"}
    )

    page = response.content.decode()
    assert "<html" in page
    assert '<strong id="preview-matched">1</strong> of the 1 stored mention' in page


# --- one-off search -----------------------------------------------------------------------


def test_a_one_off_search_shows_the_posts_and_stores_nothing(admin_client, brand, x_sim):
    now = datetime.now(UTC)
    for n in range(4):
        x_sim.add_tweet(
            text=f"northwind flat white number {n}",
            author=customer(f"fw{n}"),
            created_at=now - timedelta(hours=n + 1),
        )
    x_sim.add_tweet(text="a flat white elsewhere", author=customer("else"), created_at=now)
    budget = budget_for_x(brand)

    response = search(admin_client, brand, "northwind flat white")

    page = response.content.decode()
    assert response.status_code == 200
    assert "X returned <strong>4</strong> matching posts. Nothing was stored." in page
    assert "northwind flat white number 3" in page and "@fw0" in page
    assert "a flat white elsewhere" not in page
    # Everything X has in its 7-day reach came in one page: 4 posts a week.
    assert "about <strong>0.6</strong> a day" in page
    assert "Projected X API cost: <strong>$0.26</strong> a month" in page
    searches = [e for e in x_sim.requests_log if e[1] == "/2/tweets/search/recent"]
    assert [e[2]["query"] for e in searches] == ["northwind flat white"]
    assert (Mention.objects.count(), Author.objects.count()) == (0, 0)
    assert not TrackedKeyword.objects.exists() and not PollCursor.objects.exists()
    assert budget_state(budget)[0] == 449


@pytest.fixture(scope="module")
def hn_server() -> Iterator[HackerNewsApiSimulator]:
    simulator = HackerNewsApiSimulator()
    simulator.start()
    yield simulator
    simulator.stop()


def test_a_one_off_search_on_another_platform_applies_what_it_cannot_ask(
    admin_client, brand, hn_server
):
    hn_server.reset()
    hn = Source.objects.create(
        brand=brand, platform=Platform.HACKER_NEWS, name="HN", base_url=hn_server.base_url
    )
    hn_server.add_post(text="<p>northwind cold brew is back</p>", author="first")
    hn_server.add_post(text="<p>cold northwind brew, in that order</p>", author="second")
    hn_server.add_post(text="<p>northwind tea</p>", author="third")

    page = search(admin_client, brand, 'northwind "cold brew"', source=hn.pk).text

    # Algolia is asked for the words; the phrase is Earshot's to check.
    searches = [
        query for _, path, query, _ in hn_server.requests_log if path == "/api/v1/search_by_date"
    ]
    assert [query["query"] for query in searches] == ["northwind cold brew"]
    assert "Hacker News returned <strong>1</strong> matching post." in page
    assert "1 more it returned do not match the whole query." in page
    assert "northwind cold brew is back" in page and "in that order" not in page
    assert "Projected X API cost" not in page
    assert (Mention.objects.count(), Author.objects.count()) == (0, 0)
    assert budget_state(budget_for_source(hn))[0] == 9_999


def test_a_one_off_search_makes_no_call_when_the_budget_is_spent(admin_client, brand, x_sim):
    x_sim.add_tweet(text="northwind cortado", author=customer("c1"))
    budget = budget_for_x(brand)
    reset_at = datetime.now(UTC) + timedelta(minutes=10)
    RateBudget.objects.create(
        key=budget.key, limit=450, window_seconds=900, remaining=0, reset_at=reset_at
    )

    page = search(admin_client, brand, "northwind cortado").content.decode()

    assert "No X search call is left in this credential&#x27;s rate budget until" in page
    assert x_sim.requests_log == []
    assert budget_state(budget)[0] == 0


def test_a_refused_one_off_search_says_what_x_answered(admin_client, brand, x_sim):
    x_sim.fail_next(401)

    page = search(admin_client, brand, "northwind").content.decode()

    assert 'id="search-problem"' in page
    assert "X refused the credentials (401 Unauthorized" in page
    assert Mention.objects.count() == 0
    assert budget_state(budget_for_x(brand))[0] == 449


def test_an_invalid_query_is_not_searched(admin_client, brand, x_sim):
    page = search(admin_client, brand, '"unclosed').content.decode()

    assert "A quotation mark is not closed" in page
    assert x_sim.requests_log == []
    assert budget_state(budget_for_x(brand))[0] == 450


def test_only_admins_may_search_and_only_by_post(client, supervisor, admin_user, brand, x_sim):
    client.force_login(supervisor)
    assert search(client, brand, "northwind").status_code == 403
    assert preview(client, brand, "northwind").status_code == 403
    client.force_login(admin_user)
    assert client.get(reverse("listening:keyword-search"), {"brand": brand.pk}).status_code == 405
    assert x_sim.requests_log == []


# --- pause / resume -----------------------------------------------------------------------


def test_a_paused_keyword_is_not_polled_until_resumed(admin_client, keyword, x_sim):
    x_sim.add_tweet(text="@NorthwindHelp are you there?", author=customer("waiting"))
    now = datetime.now(UTC)

    response = admin_client.post(reverse("listening:keyword-pause", args=[keyword.pk]))

    assert response.status_code == 302
    keyword.refresh_from_db()
    assert keyword.is_active is False
    assert poll_claim_due(now=now + timedelta(hours=1)) == []
    # A poll the dispatcher queued before the pause makes no call either.
    assert keyword_poll(keyword_id=keyword.pk, max_pages=1).pages == 0
    assert x_sim.requests_log == [] and Mention.objects.count() == 0

    admin_client.post(reverse("listening:keyword-resume", args=[keyword.pk]))

    keyword.refresh_from_db()
    assert keyword.is_active is True
    assert poll_claim_due() == [keyword.pk]
    assert keyword_poll(keyword_id=keyword.pk, max_pages=1).stored == 1


def test_pause_and_resume_buttons_are_on_the_list_and_edit_pages(admin_client, keyword):
    edit_url = reverse("listening:keyword-edit", args=[keyword.pk])
    pause_url = reverse("listening:keyword-pause", args=[keyword.pk])
    resume_url = reverse("listening:keyword-resume", args=[keyword.pk])

    assert f'action="{pause_url}"' in admin_client.get(reverse("listening:keywords")).text
    assert f'action="{pause_url}"' in admin_client.get(edit_url).text
    response = admin_client.post(pause_url, {"next": edit_url}, follow=True)

    assert response.redirect_chain == [(edit_url, 302)]
    assert f'action="{resume_url}"' in response.text
    assert f"Paused “{keyword.query}”: Earshot no longer polls it." in response.text
    again = admin_client.post(pause_url, {"next": "https://evil.example/"})
    assert again.url == reverse("listening:keywords") + f"#keyword-{keyword.pk}"


def test_pausing_needs_an_admin_and_a_post(client, supervisor, admin_user, keyword):
    client.force_login(supervisor)
    assert client.post(reverse("listening:keyword-pause", args=[keyword.pk])).status_code == 403
    client.force_login(admin_user)
    assert client.get(reverse("listening:keyword-pause", args=[keyword.pk])).status_code == 405
    assert TrackedKeyword.objects.get(pk=keyword.pk).is_active is True


# --- routing to a team --------------------------------------------------------------------


@pytest.fixture
def teams(brand):
    return (
        Team.objects.create(brand=brand, name="Billing"),
        Team.objects.create(brand=brand, name="Support"),
    )


def edit(client, keyword, **changes):
    return client.post(
        reverse("listening:keyword-edit", args=[keyword.pk]),
        {
            "brand": keyword.brand_id,
            "query": keyword.query,
            "poll_interval_seconds": keyword.poll_interval_seconds,
            "is_active": "on",
            **changes,
        },
        follow=True,
    )


def test_routing_moves_the_open_mentions_and_leaves_the_closed_ones(
    admin_client, brand, keyword, teams, admin_user
):
    billing, support = teams
    TrackedKeyword.objects.filter(pk=keyword.pk).update(team=billing)
    mentions = {
        status: make_mention(brand=brand, keyword=keyword, text=f"about {status}", status=status)
        for status in (
            MentionStatus.NEW,
            MentionStatus.REOPENED,
            MentionStatus.REPLIED,
            MentionStatus.RESOLVED,
            MentionStatus.SPAM,
        )
    }
    mentions["claimed"] = make_mention(
        brand=brand,
        keyword=keyword,
        text="being answered",
        status=MentionStatus.CLAIMED,
        claimed_by=admin_user,
        claim_expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    Mention.objects.filter(keyword=keyword).update(team=billing)
    elsewhere = make_mention(brand=brand, text="another keyword's", status=MentionStatus.NEW)

    response = edit(admin_client, keyword, team=support.pk)

    assert "Keyword saved; 3 open mentions moved to the Support team." in response.text
    teams_now = dict(Mention.objects.filter(keyword=keyword).values_list("status", "team__name"))
    assert teams_now == {
        "new": "Support",
        "reopened": "Support",
        "claimed": "Support",
        "replied": "Billing",
        "resolved": "Billing",
        "spam": "Billing",
    }
    assert Mention.objects.get(pk=elsewhere.pk).team is None
    assert TrackedKeyword.objects.get(pk=keyword.pk).team == support


def test_unrouting_sends_the_open_mentions_to_every_agent(admin_client, brand, keyword, teams):
    billing, _ = teams
    TrackedKeyword.objects.filter(pk=keyword.pk).update(team=billing)
    open_one = make_mention(brand=brand, keyword=keyword, text="open")
    Mention.objects.filter(pk=open_one.pk).update(team=billing)

    response = edit(admin_client, keyword, team="")

    assert "1 open mention moved to every agent of the brand." in response.text
    assert Mention.objects.get(pk=open_one.pk).team is None


def test_a_team_of_another_brand_is_refused(admin_client, brand, keyword, teams):
    other = Brand.objects.create(name="Southwind Tea")
    theirs = Team.objects.create(brand=other, name="Tea desk")
    open_one = make_mention(brand=brand, keyword=keyword, text="open")

    response = edit(admin_client, keyword, team=theirs.pk)

    assert response.redirect_chain == []
    assert "Select a valid choice" in response.text
    assert TrackedKeyword.objects.get(pk=keyword.pk).team is None
    assert Mention.objects.get(pk=open_one.pk).team is None
    with pytest.raises(TeamOfAnotherBrand):
        keyword_route(keyword=keyword, team=theirs)
    assert Mention.objects.get(pk=open_one.pk).team is None


def test_a_new_keyword_may_only_go_to_a_team_of_its_brand(admin_client, brand, teams):
    other = Brand.objects.create(name="Southwind Tea")
    theirs = Team.objects.create(brand=other, name="Tea desk")

    response = admin_client.post(
        reverse("listening:keywords"),
        {"brand": brand.pk, "query": "oat milk", "poll_interval_seconds": 60, "team": theirs.pk},
    )

    assert "Tea desk is a team of Southwind Tea, not Northwind Coffee." in response.text
    assert not TrackedKeyword.objects.filter(query="oat milk").exists()
    with pytest.raises(TeamOfAnotherBrand):
        keyword_create(brand=brand, query="oat milk", poll_interval_seconds=60, team=theirs)
    admin_client.post(
        reverse("listening:keywords"),
        {"brand": brand.pk, "query": "oat milk", "poll_interval_seconds": 60, "team": teams[0].pk},
    )
    assert TrackedKeyword.objects.get(query="oat milk").team == teams[0]


def test_the_team_select_offers_only_the_keywords_brand_teams(admin_client, keyword, teams):
    Team.objects.create(brand=Brand.objects.create(name="Southwind Tea"), name="Tea desk")

    page = admin_client.get(reverse("listening:keyword-edit", args=[keyword.pk])).text

    select = page[page.index('<select name="team"') :].split("</select>")[0]
    assert "Billing" in select and "Support" in select
    assert "Tea desk" not in select


def test_routing_twice_moves_nothing_the_second_time(brand, keyword, teams):
    make_mention(brand=brand, keyword=keyword, text="open")

    assert keyword_route(keyword=keyword, team=teams[0]) == 1
    assert keyword_route(keyword=keyword, team=teams[0]) == 0
