"""Working the queue in bulk, and views each agent keeps."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse

from listening.models import Mention
from responses.models import SavedView
from responses.services.claims import mention_claim
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db


def test_bulk_resolve_closes_what_it_may_and_says_what_it_skipped(
    client, brand, agent, other_agent
):
    mine = make_mention(brand=brand, text="thanks, sorted", status="replied")
    open_one = make_mention(brand=brand, text="just saying hi")
    theirs = make_mention(brand=brand, text="bob is on this")
    mention_claim(mention_id=theirs.pk, agent=other_agent)
    client.force_login(agent)

    response = client.post(
        reverse("responses:bulk"),
        {
            "mentions": [mine.pk, open_one.pk, theirs.pk],
            "action": "resolve",
            "return_query": "sentiment=neutral",
        },
        follow=True,
    )

    assert response.redirect_chain[-1][0] == reverse("responses:queue") + "?sentiment=neutral"
    assert (
        "2 mentions resolve. 1 skipped: closed already, or someone else holds them."
        in response.content.decode()
    )
    statuses = dict(Mention.objects.values_list("pk", "status"))
    assert statuses == {mine.pk: "resolved", open_one.pk: "resolved", theirs.pk: "claimed"}


def test_bulk_ignore_and_spam(client, brand, agent):
    quiet = make_mention(brand=brand, text="Northwind is a shop")
    junk = make_mention(brand=brand, text="cheap followers here")
    client.force_login(agent)
    client.post(reverse("responses:bulk"), {"mentions": [quiet.pk], "action": "ignore"})
    client.post(reverse("responses:bulk"), {"mentions": [junk.pk], "action": "spam"})
    assert Mention.objects.get(pk=quiet.pk).status == "no_reply_needed"
    assert Mention.objects.get(pk=junk.pk).status == "spam"


def test_bulk_assign_is_for_supervisors(client, brand, agent, other_agent, supervisor):
    a = make_mention(brand=brand, text="one")
    b = make_mention(brand=brand, text="two")
    payload = {"mentions": [a.pk, b.pk], "action": "assign", "assignee": other_agent.pk}

    client.force_login(agent)
    assert client.post(reverse("responses:bulk"), payload).status_code == 403
    assert not Mention.objects.filter(status="claimed").exists()

    client.force_login(supervisor)
    client.post(reverse("responses:bulk"), payload)
    assert set(Mention.objects.values_list("claimed_by__username", flat=True)) == {"bob"}


def test_a_bulk_action_without_a_selection_is_explained(client, brand, agent):
    client.force_login(agent)
    response = client.post(reverse("responses:bulk"), {"action": "resolve"}, follow=True)
    assert "Select at least one mention first (x on a row)." in response.content.decode()


def test_filters_for_unclaimed_and_reach(client, brand, agent, other_agent):
    loud = make_mention(brand=brand, text="loud and free", author=make_author(followers=15_000))
    loud_taken = make_mention(
        brand=brand, text="loud but taken", author=make_author(followers=20_000)
    )
    quiet = make_mention(brand=brand, text="quiet and free", author=make_author(followers=12))
    mention_claim(mention_id=loud_taken.pk, agent=other_agent)
    client.force_login(agent)

    html = client.get(
        reverse("responses:queue"), {"unclaimed": "on", "min_followers": 10_000}
    ).content.decode()

    assert loud.text in html and loud_taken.text not in html and quiet.text not in html


def test_saving_a_view_keeps_its_filters_and_it_is_yours_alone(client, brand, agent, other_agent):
    client.force_login(agent)
    response = client.post(
        reverse("responses:saved-view-create"),
        {
            "name": "Angry with reach",
            "sentiment": "negative",
            "unclaimed": "on",
            "min_followers": "10000",
            "since": "x",
        },
    )
    (saved,) = SavedView.objects.all()
    assert (saved.owner, saved.name) == (agent, "Angry with reach")
    assert saved.filters == {"sentiment": "negative", "unclaimed": "on", "min_followers": "10000"}
    assert parse_qs(urlparse(response["Location"]).query) == {
        "sentiment": ["negative"],
        "unclaimed": ["on"],
        "min_followers": ["10000"],
    }
    html = client.get(reverse("responses:queue")).content.decode()
    assert ">Angry with reach</a>" in html
    assert "sentiment=negative&amp;unclaimed=on&amp;min_followers=10000" in html

    again = client.post(
        reverse("responses:saved-view-create"), {"name": "Angry with reach"}, follow=True
    )
    assert "You already have a view called “Angry with reach”." in again.content.decode()

    client.force_login(other_agent)
    assert "Angry with reach" not in client.get(reverse("responses:queue")).content.decode()
    assert client.post(reverse("responses:saved-view-delete", args=[saved.pk])).status_code == 404
    client.force_login(agent)
    client.post(reverse("responses:saved-view-delete", args=[saved.pk]))
    assert not SavedView.objects.exists()
