"""The mention page's customer panel (history, how we answered, tags) and the conversation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from listening.models import AuthorTag
from responses.models import Reply
from responses.selectors import EARLIER_MENTIONS_SHOWN, conversation_thread, customer_profile
from responses.services.customers import author_tag_add, author_tag_remove
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
POSITIVE = "@NorthwindHelp love the new oat latte, great job!"
NEGATIVE = "@NorthwindHelp my order is late again, terrible"
NEUTRAL = "@NorthwindHelp where is my order?"


def sent(mention, agent, text: str, after: timedelta) -> Reply:
    return Reply.objects.create(
        mention=mention,
        agent=agent,
        text=text,
        status="sent",
        external_id=f"99{mention.pk}{int(after.total_seconds())}",
        posted_at=mention.posted_at + after,
    )


def ago(**kwargs) -> datetime:
    return NOW - timedelta(**kwargs)


def in_conversation(mention, conversation_id: str, replied_to: str = ""):
    mention.conversation_id = conversation_id
    if replied_to:
        mention.referenced_posts = [{"type": "replied_to", "id": replied_to}]
    mention.save(update_fields=["conversation_id", "referenced_posts"])
    return mention


def mention_page(client, mention) -> str:
    return client.get(reverse("responses:mention", args=[mention.pk])).content.decode()


def tag_url(action: str, mention, tag: str) -> str:
    return reverse(f"responses:customer-tag-{action}", args=[mention.pk, tag])


# --- history and how it was answered -----------------------------------------------------


def test_the_panel_lists_earlier_mentions_with_how_each_was_answered(
    client, brand, agent, other_agent
):
    ada = make_author(username="ada_l", name="Ada L")
    answered = make_mention(brand=brand, author=ada, text=NEGATIVE, posted_at=ago(days=3))
    sent(answered, other_agent, "So sorry Ada, DM us your order number? ^BL", timedelta(minutes=12))
    # A later reply on the same mention is not how it was first answered.
    sent(answered, agent, "Following up: it ships today. ^AM", timedelta(hours=5))
    failed = make_mention(brand=brand, author=ada, text=NEUTRAL, posted_at=ago(days=2))
    Reply.objects.create(mention=failed, agent=agent, text="never reached X", status="failed")
    ignored = make_mention(
        brand=brand, author=ada, text=POSITIVE, posted_at=ago(days=1), status="no_reply_needed"
    )
    current = make_mention(brand=brand, author=ada, text="@NorthwindHelp hello again")
    later = make_mention(
        brand=brand, author=ada, text="@NorthwindHelp later", posted_at=ago(hours=-1)
    )
    stranger = make_mention(brand=brand, text="@NorthwindHelp not Ada", posted_at=ago(days=1))

    profile = customer_profile(author=ada, before=current)

    assert [p.mention for p in profile.earlier] == [ignored, failed, answered]
    assert profile.earlier_total == 3
    first = profile.earlier[2].first_reply
    assert first.text == "So sorry Ada, DM us your order number? ^BL"
    assert first.agent == other_agent
    assert profile.earlier[2].answered_in == "12 min"
    assert profile.earlier[0].first_reply is None
    assert profile.earlier[1].first_reply is None  # a failed reply is not an answer

    client.force_login(agent)
    html = mention_page(client, current)
    assert "bob answered in 12 min:</span> So sorry Ada, DM us your order number? ^BL" in html
    assert "Following up: it ships today." not in html
    assert html.count("Not answered") == 2
    assert "Ignored: no reply needed" in html
    assert 'href="https://x.com/ada_l"' in html
    assert stranger.text not in html
    assert later.text not in html


def test_the_panel_caps_the_list_and_counts_the_rest(client, brand, agent):
    ada = make_author(username="ada_l")
    for n in range(EARLIER_MENTIONS_SHOWN + 3):
        make_mention(brand=brand, author=ada, text=f"post number {n}", posted_at=ago(hours=n + 1))
    current = make_mention(brand=brand, author=ada, text="@NorthwindHelp hi")

    profile = customer_profile(author=ada, before=current)

    assert len(profile.earlier) == EARLIER_MENTIONS_SHOWN
    assert profile.earlier[0].mention.text == "post number 0"  # newest first
    assert profile.earlier_total == EARLIER_MENTIONS_SHOWN + 3
    assert profile.earlier_not_shown == 3
    client.force_login(agent)
    html = mention_page(client, current)
    assert f'Earlier mentions <span class="count">({EARLIER_MENTIONS_SHOWN + 3})</span>' in html
    assert "and 3 older mentions not shown." in html
    assert "post number 19<" in html
    assert "post number 20<" not in html


def test_a_first_mention_says_so(client, brand, agent):
    current = make_mention(brand=brand, text=NEUTRAL)
    client.force_login(agent)
    assert "This is the first mention Earshot has stored from them." in mention_page(
        client, current
    )


def test_platform_text_is_escaped_in_the_panel_and_the_conversation(client, brand, agent):
    ada = make_author(username="ada_l")
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    earlier = make_mention(brand=brand, author=ada, text=payload, posted_at=ago(days=1))
    in_conversation(earlier, "555")
    current = make_mention(brand=brand, author=ada, text="@NorthwindHelp hi")
    in_conversation(current, "555", replied_to=earlier.external_id)
    client.force_login(agent)

    html = mention_page(client, current)

    assert "<script>alert" not in html
    assert "<img src=x" not in html
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    customer = html.split('id="customer"')[1]
    conversation = html.split('id="conversation"')[1].split("</section>")[0]
    assert escaped in customer
    assert escaped in conversation


def test_the_panel_takes_four_queries_however_long_the_history(
    brand, agent, django_assert_max_num_queries
):
    ada = make_author(username="ada_l")
    for n in range(30):
        past = make_mention(brand=brand, author=ada, text=POSITIVE, posted_at=ago(hours=n + 1))
        sent(past, agent, f"thanks {n}", timedelta(minutes=n))
    AuthorTag.objects.create(author=ada, tag="vip", added_by=agent)
    current = make_mention(brand=brand, author=ada, text=NEGATIVE)

    with django_assert_max_num_queries(4):
        profile = customer_profile(author=ada, before=current)
        [past.first_reply.agent.username for past in profile.earlier]
        [tag.added_by.username for tag in profile.tags]

    assert profile.earlier[5].first_reply.text == "thanks 5"


# --- tags --------------------------------------------------------------------------------


def test_tags_are_added_and_removed_once_through_htmx(client, brand, agent, other_agent):
    current = make_mention(brand=brand, text=NEUTRAL)
    client.force_login(agent)

    first = client.post(tag_url("add", current, "vip"), HTTP_HX_REQUEST="true")
    client.force_login(other_agent)
    again = client.post(tag_url("add", current, "vip"), HTTP_HX_REQUEST="true")

    assert first.status_code == again.status_code == 200
    html = again.content.decode()
    assert "<html" not in html
    assert 'id="customer"' in html
    assert 'aria-label="Remove the VIP tag"' in html
    tag = AuthorTag.objects.get(author=current.author)
    assert (tag.tag, tag.added_by) == ("vip", agent)  # the second add changed nothing

    gone = client.post(tag_url("remove", current, "vip"), HTTP_HX_REQUEST="true")
    gone_again = client.post(tag_url("remove", current, "vip"), HTTP_HX_REQUEST="true")

    assert gone.status_code == gone_again.status_code == 200
    assert "<html" not in gone_again.content.decode()
    assert "Remove the VIP tag" not in gone_again.content.decode()
    assert not AuthorTag.objects.exists()


def test_tags_work_without_javascript(client, brand, agent):
    current = make_mention(brand=brand, text=NEUTRAL)
    client.force_login(agent)
    page = reverse("responses:mention", args=[current.pk]) + "#customer"

    added = client.post(tag_url("add", current, "at_risk"))

    assert added.status_code == 302
    assert added.url == page
    html = mention_page(client, current)
    assert f"@{current.author.username} is tagged At risk." in html
    assert 'aria-label="Remove the At risk tag"' in html

    removed = client.post(tag_url("remove", current, "at_risk"))

    assert removed.url == page
    assert not AuthorTag.objects.exists()


def test_tag_views_refuse_unknown_tags_gets_and_outsiders(client, brand, agent, outsider):
    current = make_mention(brand=brand, text=NEUTRAL)
    client.force_login(agent)
    assert client.post(tag_url("add", current, "royalty")).status_code == 404
    assert client.get(tag_url("add", current, "vip")).status_code == 405
    client.force_login(outsider)
    assert client.post(tag_url("add", current, "vip")).status_code == 403
    assert not AuthorTag.objects.exists()


def test_the_services_are_idempotent(brand, agent):
    ada = make_author()
    assert author_tag_add(author=ada, tag="advocate", by=agent) is True
    assert author_tag_add(author=ada, tag="advocate", by=agent) is False
    assert author_tag_remove(author=ada, tag="advocate") is True
    assert author_tag_remove(author=ada, tag="advocate") is False
    with pytest.raises(ValueError):
        author_tag_add(author=ada, tag="royalty", by=agent)


# --- suggestions -------------------------------------------------------------------------


def test_advocate_is_suggested_from_three_positive_mentions(client, brand, agent):
    ada = make_author(username="ada_l")
    make_mention(brand=brand, author=ada, text=POSITIVE, posted_at=ago(days=30))
    make_mention(brand=brand, author=ada, text=POSITIVE, posted_at=ago(days=20))
    current = make_mention(brand=brand, author=ada, text=NEUTRAL)
    client.force_login(agent)

    assert customer_profile(author=ada, before=current).suggestions == []
    assert "Suggested:" not in mention_page(client, current)

    make_mention(brand=brand, author=ada, text=POSITIVE, posted_at=ago(days=10))
    html = mention_page(client, current)

    assert "Suggested: advocate — 3 positive mentions" in html
    assert not AuthorTag.objects.exists()  # suggested, not applied

    accepted = client.post(tag_url("add", current, "advocate"), HTTP_HX_REQUEST="true")

    assert AuthorTag.objects.get().tag == "advocate"
    assert "Suggested:" not in accepted.content.decode()


def test_at_risk_is_suggested_after_two_negative_mentions_this_week(client, brand, agent):
    ada = make_author(username="ada_l")
    make_mention(brand=brand, author=ada, text=NEGATIVE, posted_at=ago(days=8))  # too old
    current = make_mention(brand=brand, author=ada, text=NEGATIVE, posted_at=ago(hours=1))
    client.force_login(agent)

    assert "Suggested: at risk" not in mention_page(client, current)

    make_mention(brand=brand, author=ada, text=NEGATIVE, posted_at=ago(days=6))
    assert "Suggested: at risk — 2 negative mentions in the last 7 days" in mention_page(
        client, current
    )

    author_tag_add(author=ada, tag="at_risk", by=agent)
    assert customer_profile(author=ada, before=current).suggestions == []


def test_no_advocate_suggestion_for_a_customer_already_tagged(brand, agent):
    ada = make_author()
    for days in (1, 2, 3, 4):
        make_mention(brand=brand, author=ada, text=POSITIVE, posted_at=ago(days=days))
    author_tag_add(author=ada, tag="advocate", by=agent)

    assert customer_profile(author=ada).suggestions == []


# --- conversation ------------------------------------------------------------------------


def post(brand, author, text, external_id, hours_ago, replied_to="", thread="7001"):
    """A stored post of conversation `thread` (X's id of the conversation's first post)."""
    mention = make_mention(
        brand=brand,
        author=author,
        text=text,
        posted_at=ago(hours=hours_ago),
        external_id=external_id,
    )
    return in_conversation(mention, thread, replied_to=replied_to)


def test_the_conversation_interleaves_posts_and_our_replies_in_time_order(
    client, brand, agent, other_agent
):
    ada, olga = make_author(username="ada_l"), make_author(username="olga_k")
    root = post(brand, ada, "@NorthwindHelp my card was charged twice", "7001", hours_ago=3)
    ours = sent(root, other_agent, "Sorry Ada! Refund on its way. ^BL", timedelta(minutes=20))
    me_too = post(brand, olga, "@NorthwindHelp me too!", "7002", hours_ago=2, replied_to="7001")
    current = post(
        brand, ada, "@NorthwindHelp still no refund", "7003", 1, replied_to=ours.external_id
    )
    elsewhere = post(brand, ada, "@NorthwindHelp unrelated", "8000", hours_ago=1, thread="8000")
    sent(elsewhere, agent, "Answer elsewhere", timedelta(minutes=1))

    thread = conversation_thread(mention=current)

    assert [(item.mention or item.reply) for item in thread.items] == [root, ours, me_too, current]
    assert [item.is_current for item in thread.items] == [False, False, False, True]
    assert thread.items[2].in_reply_to == root
    assert thread.items[3].in_reply_to == ours
    assert thread.items[3].in_reply_to_who == "Northwind Coffee"

    client.force_login(agent)
    html = mention_page(client, current)
    conversation = html.split('id="conversation"')[1].split("</section>")[0]
    positions = [
        conversation.index(text)
        for text in [
            "my card was charged twice",
            "Sorry Ada! Refund on its way. ^BL",
            "me too!",
            "still no refund",
        ]
    ]
    assert positions == sorted(positions)
    assert "In reply to Northwind Coffee: “Sorry Ada! Refund on its way. ^BL”" in conversation
    assert "In reply to @ada_l: “@NorthwindHelp my card was charged twice”" in conversation
    assert f'id="post-{current.pk}" aria-current="true"' in conversation
    assert "unrelated" not in conversation
    assert "Answer elsewhere" not in conversation


def test_a_mention_alone_in_its_conversation_says_so(client, brand, agent):
    current = make_mention(brand=brand, text=NEUTRAL)
    client.force_login(agent)
    assert "Earshot has no other posts of this conversation." in mention_page(client, current)


def test_a_long_conversation_shows_the_posts_nearest_the_mention(brand, monkeypatch):
    monkeypatch.setattr("responses.selectors.THREAD_SIDE_LIMIT", 2)
    posts = [
        post(brand, make_author(), f"post {n}", f"70{n:02d}", hours_ago=10 - n) for n in range(7)
    ]
    current = posts[3]

    thread = conversation_thread(mention=current)

    assert [item.mention for item in thread.items] == posts[1:6]
    assert thread.older_not_shown and thread.newer_not_shown
