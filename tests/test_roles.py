"""Every page against every role: who may see what."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import make_mention

pytestmark = pytest.mark.django_db

# page -> the least role that may open it
PAGES = {
    "responses:queue": "agent",
    "responses:mention": "agent",
    "responses:report": "supervisor",
    "responses:report-csv": "supervisor",
    "responses:report-definitions": "supervisor",
    "responses:alerts": "supervisor",
    "responses:approvals": "supervisor",
    "listening:keywords": "admin",
    "listening:keyword-edit": "admin",
    "listening:health": "supervisor",
    "admin:index": "admin",
}
RANK = {None: 0, "agent": 1, "supervisor": 2, "admin": 3}


@pytest.fixture
def pages(brand, keyword) -> dict[str, str]:
    mention = make_mention(brand=brand, text="hello")
    args = {"responses:mention": [mention.pk], "listening:keyword-edit": [keyword.pk]}
    return {name: reverse(name, args=args.get(name)) for name in PAGES}


@pytest.mark.parametrize("role", ["agent", "supervisor", "admin", None])
def test_each_role_opens_exactly_its_pages(
    client, pages, role, agent, supervisor, admin_user, outsider
):
    user = {"agent": agent, "supervisor": supervisor, "admin": admin_user, None: outsider}[role]
    if role == "admin":
        user.is_staff = True
        user.save()
    client.force_login(user)
    for name, url in pages.items():
        expected = 200 if RANK[role] >= RANK[PAGES[name]] else 403
        assert client.get(url).status_code == expected, (role, name)


def test_anonymous_visitors_are_sent_to_log_in(client, pages):
    for name, url in pages.items():
        response = client.get(url)
        assert response.status_code == 302, name
        assert "login" in response["Location"], name


def test_posting_actions_need_a_role(client, outsider, brand):
    mention = make_mention(brand=brand, text="hello")
    client.force_login(outsider)
    for name in ("responses:claim", "responses:release", "responses:no-reply", "responses:reply"):
        assert client.post(reverse(name, args=[mention.pk]), {"text": "hi"}).status_code == 403
    mention.refresh_from_db()
    assert (mention.status, mention.claimed_by) == ("new", None)
    assert not mention.replies.exists()


def test_agents_cannot_add_keywords(client, agent, brand):
    client.force_login(agent)
    response = client.post(
        reverse("listening:keywords"),
        {"brand": brand.pk, "query": "sneaky", "poll_interval_seconds": 60, "is_active": "on"},
    )
    assert response.status_code == 403
    assert not brand.keywords.filter(query="sneaky").exists()


def test_admins_add_keywords_with_a_cursor_and_bad_queries_are_explained(client, admin_user, brand):
    client.force_login(admin_user)
    bad = client.post(
        reverse("listening:keywords"),
        {
            "brand": brand.pk,
            "query": '"unclosed phrase',
            "poll_interval_seconds": 60,
            "is_active": "on",
        },
    )
    assert "A quotation mark is not closed" in bad.content.decode()
    assert not brand.keywords.exists()

    client.post(
        reverse("listening:keywords"),
        {
            "brand": brand.pk,
            "query": '"Northwind Coffee"',
            "poll_interval_seconds": 60,
            "is_active": "on",
        },
    )
    (created,) = brand.keywords.all()
    assert created.query == '"Northwind Coffee"' and created.cursor.since_id == ""
