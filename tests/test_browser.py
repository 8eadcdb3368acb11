"""Real-browser journeys in Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from listening.models import Mention
from responses.models import Reply
from tests.conftest import customer, log_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_agent_answers_a_mention_and_the_supervisor_sees_the_response_time(
    browser, live_server, x_sim, celery_worker_process, keyword, agent, supervisor
):
    tweet = x_sim.add_tweet(
        text="@NorthwindHelp the espresso machine I bought last week stopped working",
        author=customer("teo_v", "Teodora Vance", followers=870),
        created_at=datetime.now(UTC) - timedelta(minutes=2),
    )
    call_command("poll", stdout=StringIO())
    mention = Mention.objects.get(external_id=tweet["id"])

    page = log_in(browser, live_server.url, "alice")
    row = page.locator(f"#mention-{mention.pk}")
    expect(row).to_contain_text("the espresso machine I bought last week stopped working")
    row.get_by_role("button", name="Claim").click()
    expect(page.locator(f"#mention-{mention.pk}")).to_contain_text("Claimed by you")

    page.locator(f"#mention-{mention.pk} .text a").click()
    draft = page.get_by_label("Your reply")
    expect(draft).to_have_value(
        re.compile(r"^Hi Teodora, .*“the espresso machine I bought last week.*\^AM$")
    )
    drafted = draft.input_value()
    expect(page.locator("#reply-count")).to_have_text(str(len(drafted)))
    draft.press("Control+End")
    draft.press_sequentially(" ☕")
    expect(page.locator("#reply-count")).to_have_text(str(len(drafted) + 2))
    page.get_by_role("button", name="Send reply").click()

    expect(page.locator(".messages")).to_contain_text("Your reply to @teo_v is on its way.")
    expect(page.locator(".notice.undo")).to_contain_text("Your reply to @teo_v leaves at")
    expect(page.locator(f"#mention-{mention.pk}")).to_have_count(0)
    post = wait_until(lambda: x_sim.received_posts and x_sim.received_posts[0])
    assert post["in_reply_to_tweet_id"] == tweet["id"]
    assert post["text"] == drafted + " ☕"
    reply = wait_until(lambda: Reply.objects.filter(status="sent").first())

    boss = log_in(browser, live_server.url, "sofia")
    boss.get_by_role("link", name="Response times").click()
    response_time = reply.posted_at - mention.posted_at
    expected = str(timedelta(seconds=response_time.total_seconds()))
    expect(boss.locator("#stat-median")).to_have_text(expected)
    expect(boss.locator("#stat-answered")).to_have_text("1")
    expect(boss.locator('tr[data-agent="alice"]')).to_contain_text("alice")


def test_new_mentions_appear_in_an_open_queue_without_a_reload(
    browser, live_server, x_sim, keyword, agent
):
    page = log_in(browser, live_server.url, "alice")
    expect(page.get_by_text("Nothing waiting")).to_be_visible()
    x_sim.add_tweet(text="@NorthwindHelp hello from a fresh customer", author=customer("fresh_fi"))
    call_command("poll", stdout=StringIO())
    expect(page.get_by_text("hello from a fresh customer")).to_be_visible(timeout=6000)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


def test_two_agents_see_each_others_claims_within_three_seconds(
    browser, live_server, x_sim, keyword, agent, other_agent
):
    first = x_sim.add_tweet(text="@NorthwindHelp first problem", author=customer("p_one"))
    second = x_sim.add_tweet(text="@NorthwindHelp second problem", author=customer("p_two"))
    call_command("poll", stdout=StringIO())
    mine = Mention.objects.get(external_id=first["id"])
    theirs = Mention.objects.get(external_id=second["id"])
    alice = log_in(browser, live_server.url, "alice")
    bob = log_in(browser, live_server.url, "bob")
    expect(bob.locator(f"#mention-{mine.pk}")).to_contain_text("Claim")

    alice.locator(f"#mention-{mine.pk}").get_by_role("button", name="Claim").click()
    expect(bob.locator(f"#mention-{mine.pk}")).to_contain_text("Claimed by alice", timeout=3000)
    bob.locator(f"#mention-{theirs.pk}").get_by_role("button", name="Claim").click()
    expect(alice.locator(f"#mention-{theirs.pk}")).to_contain_text("Claimed by bob", timeout=3000)
    expect(alice.locator(f"#mention-{mine.pk}")).to_contain_text("Claimed by you")


def test_the_queue_works_from_the_keyboard(browser, live_server, keyword, agent):
    now = datetime.now(UTC)
    from tests.factories import make_mention

    older = make_mention(
        brand=keyword.brand, text="first in line", posted_at=now - timedelta(hours=2)
    )
    newer = make_mention(
        brand=keyword.brand, text="second in line", posted_at=now - timedelta(hours=1)
    )
    page = log_in(browser, live_server.url, "alice")

    page.keyboard.press("?")
    expect(page.get_by_role("dialog")).to_contain_text("next / previous mention")
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    expect(page.locator(f"#mention-{older.pk}")).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("j")
    expect(page.locator(f"#mention-{newer.pk}")).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("c")
    expect(page.locator(f"#mention-{newer.pk}")).to_contain_text("Claimed by you")
    page.keyboard.press("x")
    page.keyboard.press("k")
    page.keyboard.press("x")
    page.get_by_role("button", name="No reply needed").click()
    expect(page.locator(".messages")).to_contain_text("2 mentions no reply needed.")
    assert set(Mention.objects.values_list("status", flat=True)) == {"no_reply_needed"}
