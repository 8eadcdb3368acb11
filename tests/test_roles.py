"""Every URL against every role: one table says who may use what, and the test holds each
URL of the project to it, for an anonymous visitor, a signed-in outsider without a role, an
agent, a supervisor and an admin.

A URL that the table does not list fails the test: a new page states its least role here,
one line, before it can ship.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from listening.models import AuthorTagKind, Brand, Platform, Source, Team
from responses.models import Invite, Reply, ReplyStatus, SavedView
from tests.factories import make_mention

pytestmark = pytest.mark.django_db

PUBLIC, AGENT, SUPERVISOR, ADMIN = "public", "agent", "supervisor", "admin"
# How a URL is used: read with GET, an action by POST only, or a form page (GET shows the
# form, POST sends it; checked with GET).
GET, POST, FORM = "GET", "POST", "GET+POST"

# URL name -> (the least role that may use it, how). Django's admin counts as one entry,
# "admin", checked on ADMIN_SAMPLE.
PERMISSIONS: dict[str, tuple[str, str]] = {
    "healthz": (PUBLIC, GET),
    "login": (PUBLIC, FORM),
    "logout": (PUBLIC, POST),
    "invite-accept": (PUBLIC, FORM),
    "admin": (ADMIN, FORM),
    "responses:queue": (AGENT, GET),
    "responses:claim-next": (AGENT, POST),
    "responses:bulk": (AGENT, POST),
    "responses:saved-view-create": (AGENT, POST),
    "responses:saved-view-delete": (AGENT, POST),
    "responses:mention": (AGENT, GET),
    "responses:claim": (AGENT, POST),
    "responses:release": (AGENT, POST),
    "responses:assign": (SUPERVISOR, POST),
    "responses:presence": (AGENT, POST),
    "responses:no-reply": (AGENT, POST),
    "responses:spam": (AGENT, POST),
    "responses:resolve": (AGENT, POST),
    "responses:reply": (AGENT, POST),
    "responses:handled": (AGENT, POST),
    "responses:private": (AGENT, POST),
    "responses:approvals": (SUPERVISOR, GET),
    "responses:approve": (SUPERVISOR, POST),
    "responses:send-back": (SUPERVISOR, POST),
    "responses:customer-tag-add": (AGENT, POST),
    "responses:customer-tag-remove": (AGENT, POST),
    "responses:undo": (AGENT, POST),
    "responses:report": (SUPERVISOR, GET),
    "responses:report-csv": (SUPERVISOR, GET),
    "responses:report-definitions": (SUPERVISOR, GET),
    "responses:alerts": (SUPERVISOR, GET),
    "responses:people": (ADMIN, GET),
    "responses:invite": (ADMIN, POST),
    "responses:invite-revoke": (ADMIN, POST),
    "responses:person": (ADMIN, FORM),
    "responses:person-deactivate": (ADMIN, POST),
    "responses:person-reactivate": (ADMIN, POST),
    "responses:team-create": (ADMIN, POST),
    "responses:team": (ADMIN, FORM),
    "listening:keywords": (ADMIN, FORM),
    "listening:keyword-edit": (ADMIN, FORM),
    "listening:health": (SUPERVISOR, GET),
    # Added by the keyword studio, sources and audit work:
    "listening:keyword-preview": (ADMIN, GET),
    "listening:keyword-search": (ADMIN, POST),
    "listening:keyword-pause": (ADMIN, POST),
    "listening:keyword-resume": (ADMIN, POST),
    "listening:sources": (ADMIN, GET),
    "listening:source-add": (ADMIN, FORM),
    "listening:source-edit": (ADMIN, FORM),
    "listening:source-test": (ADMIN, POST),
    "listening:brand-x": (ADMIN, FORM),
    "listening:brand-x-test": (ADMIN, POST),
    "responses:audit": (SUPERVISOR, GET),
}
# Pages of Django's admin the table checks, model pages among them: the admin role holds
# every model permission there (config.roles.AdminRoleBackend), not only superusers.
ADMIN_SAMPLE = (
    "admin:index",
    "admin:password_change",
    "admin:jsi18n",
    "admin:listening_brand_changelist",
    "admin:listening_brand_add",
    "admin:responses_playbook_changelist",
    "admin:auth_user_changelist",
)
RANK = {None: 0, AGENT: 1, SUPERVISOR: 2, ADMIN: 3}
VISITORS = ("anonymous", None, AGENT, SUPERVISOR, ADMIN)  # least first: their POSTs go first


def _named_urls(resolver: URLResolver, namespace: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _named_urls(entry, inner)
        elif entry.name:
            yield f"{namespace}{entry.name}", entry


def project_urls() -> dict[str, URLPattern]:
    return dict(_named_urls(get_resolver()))


def table_entry(url_name: str) -> str:
    return "admin" if url_name.startswith("admin:") else url_name


def test_every_url_of_the_project_is_in_the_table_and_only_those():
    names = {table_entry(name) for name in project_urls()}
    assert names - PERMISSIONS.keys() == set(), "add these URLs to PERMISSIONS"
    assert PERMISSIONS.keys() - names == set(), "these URLs are gone: remove them"


# --- what each URL is asked with ---------------------------------------------------------

INVITE_TOKEN = "a-token-for-the-permission-table"


@pytest.fixture
def url_kwargs(brand, keyword, agent) -> Callable[[User | None], dict[str, object]]:
    """The values of every URL argument; `view_id` is the visitor's own saved view."""
    mention = make_mention(brand=brand, text="@NorthwindHelp hello")
    reply = Reply.objects.create(
        mention=mention, agent=agent, text="Hello!", status=ReplyStatus.UNDONE
    )
    team = Team.objects.create(brand=brand, name="Billing")
    someone = User.objects.create_user(username="target", password="x")
    invite = Invite.objects.create(
        email="new@example.com",
        role=AGENT,
        token_hash=hashlib.sha256(INVITE_TOKEN.encode()).hexdigest(),
        expires_at=timezone.now() + timedelta(days=1),
    )
    # Its connection test is refused at once on this machine: never the internet.
    source = Source.objects.create(
        brand=brand,
        platform=Platform.RSS,
        name="A feed",
        base_url="http://127.0.0.1:9/feed.xml",
        allow_private_address=True,
    )
    fixed = {
        "mention_id": mention.pk,
        "reply_id": reply.pk,
        "keyword_id": keyword.pk,
        "tag": AuthorTagKind.values[0],
        "user_id": someone.pk,
        "team_id": team.pk,
        "invite_id": invite.pk,
        "token": INVITE_TOKEN,
        "source_id": source.pk,
        "brand_id": brand.pk,
        "platform": Platform.RSS,
    }

    def kwargs_for(user: User | None) -> dict[str, object]:
        owner = user or agent
        saved, _ = SavedView.objects.get_or_create(owner=owner, name="Mine")
        return {**fixed, "view_id": saved.pk}

    return kwargs_for


@pytest.fixture
def visitors(agent, supervisor, admin_user, outsider) -> dict[str | None, User]:
    admin_user.is_staff = True  # Django's admin asks for it besides the role
    admin_user.save()
    return {AGENT: agent, SUPERVISOR: supervisor, ADMIN: admin_user, None: outsider}


def _url(url_name: str, pattern: URLPattern, kwargs: dict[str, object]) -> str:
    wanted = pattern.pattern.converters.keys()
    missing = wanted - kwargs.keys()
    assert not missing, f"url_kwargs needs a value for {missing} ({url_name})"
    return reverse(url_name, kwargs={name: kwargs[name] for name in wanted})


def _sent_to_log_in(response) -> bool:
    return response.status_code == 302 and "login" in response["Location"]


def _ask(client: Client, method: str, url: str):
    return client.post(url) if method == POST else client.get(url)


def _checked_names() -> list[str]:
    return sorted(
        name for name in PERMISSIONS if name != "admin" and not name.startswith("admin:")
    ) + list(ADMIN_SAMPLE)


def _wrong_answers(url_name: str, visitors, url_kwargs) -> list[tuple]:
    """How `url_name` answers each visitor where that differs from the table."""
    least, how = PERMISSIONS[table_entry(url_name)]
    pattern = project_urls()[url_name]
    method = POST if how == POST else GET
    wrong = []
    for visitor in VISITORS:
        client = Client()
        user = None if visitor == "anonymous" else visitors[visitor]
        if user is not None:
            client.force_login(user)
        url = _url(url_name, pattern, url_kwargs(user))
        response = _ask(client, method, url)
        status = response.status_code
        where = (url_name, visitor, method, status)
        if least == PUBLIC:
            # Logging out sends you to the login page: that is not a refusal.
            ok = status not in (403, 404, 405)
        elif user is None:
            ok = _sent_to_log_in(response)
        elif RANK[visitor] < RANK[least]:
            ok = status == 403
        else:
            ok = status not in (403, 404, 405) and not _sent_to_log_in(response)
            if ok and how == POST:
                # An action changes nothing when fetched: GET is refused.
                client.force_login(user)
                status = client.get(url).status_code
                ok, where = status == 405, (url_name, visitor, GET, status)
        if not ok:
            wrong.append(where)
    return wrong


def test_each_url_answers_each_visitor_as_the_table_says(visitors, url_kwargs, x_sim):
    # One test for every URL (not one each): the people and rows it needs are made once.
    wrong = [
        answer
        for url_name in _checked_names()
        for answer in _wrong_answers(url_name, visitors, url_kwargs)
    ]
    assert not wrong, "answers unlike PERMISSIONS (URL, visitor, method, status):\n" + "\n".join(
        map(str, wrong)
    )


# --- side effects that must not happen ---------------------------------------------------


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


def test_supervisors_cannot_change_roles_or_deactivate(client, supervisor, agent):
    client.force_login(supervisor)
    assert (
        client.post(reverse("responses:person", args=[agent.pk]), {"role": ADMIN}).status_code
        == 403
    )
    assert client.post(reverse("responses:person-deactivate", args=[agent.pk])).status_code == 403
    agent = User.objects.get(pk=agent.pk)
    assert agent.is_active
    assert list(agent.groups.values_list("name", flat=True)) == [AGENT]


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


def test_an_admin_who_is_not_a_superuser_adds_a_brand_in_djangos_admin(
    client, admin_user, supervisor
):
    assert not admin_user.is_superuser
    admin_user.is_staff = True
    admin_user.save()
    supervisor.is_staff = True  # staff alone is not enough: the role decides
    supervisor.save()
    url = reverse("admin:listening_brand_add")
    # The brand's page edits its keywords inline: an empty set of them.
    form = {"name": "Contoso Tea", "keywords-TOTAL_FORMS": "0", "keywords-INITIAL_FORMS": "0"}

    client.force_login(supervisor)
    assert client.post(url, form).status_code == 403
    assert not Brand.objects.filter(name="Contoso Tea").exists()

    client.force_login(admin_user)
    response = client.post(url, form)
    assert response.status_code == 302
    assert Brand.objects.filter(name="Contoso Tea").exists()
