"""axe-core in Chromium on every page a person uses: no serious or critical violations."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone

from listening.models import Team
from listening.services.keywords import keyword_create
from responses.models import Invite, Reply
from tests.conftest import log_in
from tests.factories import make_author, make_mention

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
BLOCKING = {"serious", "critical"}


def blocking_violations(page) -> list[str]:
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in BLOCKING
    ]


def test_every_page_passes_axe(browser, live_server, brand, agent, supervisor, admin_user):
    keyword = keyword_create(brand=brand, query="@NorthwindHelp", poll_interval_seconds=30)
    angry = make_mention(
        brand=brand,
        keyword=keyword,
        text="@NorthwindHelp my order is late, this is awful. Where is it?",
        author=make_author(username="angry_al", name="Al Angry", followers=25_000),
    )
    answered = make_mention(
        brand=brand, keyword=keyword, text="Love the new mugs!", status="replied"
    )
    Reply.objects.create(
        mention=answered,
        agent=agent,
        text="Thank you!",
        status="sent",
        external_id="1",
        posted_at=answered.posted_at,
    )
    admin_user.is_staff = True
    admin_user.save()
    team = Team.objects.create(brand=brand, name="Billing")
    invite_token = "an-invitation-for-axe"
    Invite.objects.create(
        email="new@example.com",
        role="agent",
        token_hash=hashlib.sha256(invite_token.encode()).hexdigest(),
        expires_at=timezone.now() + timedelta(days=1),
    )
    pages = {
        "alice": ["/queue/", f"/mentions/{angry.pk}/", f"/mentions/{answered.pk}/"],
        "sofia": ["/report/", "/audit/"],
        "adam": [
            "/audit/",
            "/listening/keywords/",
            f"/listening/keywords/{keyword.pk}/",
            "/people/",
            f"/people/{agent.pk}/",
            f"/people/teams/{team.pk}/",
        ],
    }
    found = {}
    anonymous = browser.new_context(base_url=live_server.url).new_page()
    anonymous.goto("/login/")
    found["/login/"] = blocking_violations(anonymous)
    anonymous.goto(f"/invite/{invite_token}/")
    found["/invite/…/"] = blocking_violations(anonymous)
    for username, paths in pages.items():
        page = log_in(browser, live_server.url, username)
        for path in paths:
            page.goto(path)
            found[path] = blocking_violations(page)
    assert {path: issues for path, issues in found.items() if issues} == {}
