"""The audit log (issue 7): who changed keywords, credentials and users, and who claimed,
assigned, sent, approved and overrode the tone guard; the /audit/ page; retention."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from auditlog.models import LogEntry
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from config.audit import AuditActorMiddleware
from config.roles import NEEDS_APPROVAL
from listening.models import Brand, Mention, MentionStatus, Platform, Source, Team
from responses.audit_selectors import AuditFilters, audit_entries, audit_entry_sentence
from responses.models import Reply, ReplyStatus
from responses.services.audit import AuditEvent, audit_entries_delete_expired
from responses.services.claims import (
    claims_release_expired,
    mention_assign,
    mention_claim,
    mention_claim_next,
    mention_close,
    mention_release,
)
from responses.services.replies import (
    ReplyNeedsReview,
    reply_approve,
    reply_mark_handled,
    reply_post,
    reply_return,
    reply_submit,
    reply_undo,
)
from responses.tasks import delete_expired_audit_entries, release_expired_claims
from tests.conftest import _user, all_at_once, customer, wait_until
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db

REPLY = "Hi Pia, so sorry about the parcel! Could you DM us your order number? ^AM"
SOURCE_SECRET = "auditsecret-mastodon-token-8c1f"
BRAND_SECRET = "auditsecret-x-bearer-5e2d"
REPLY_GUS = "Hi Gus, so sorry your order is late! Could you DM us its number? ^AM"


def desk_entries():
    """The desk's events (fixtures' users, groups and brands make entries of their own)."""
    return LogEntry.objects.filter(additional_data__has_key="event")


def only_entry() -> LogEntry:
    (entry,) = desk_entries()
    return entry


def as_request_by(user: User, change: Callable[[], None], address: str = "198.51.100.9") -> None:
    """Make `change` inside a request by `user`, through the audit middleware, as a page
    of Earshot's would."""

    def view(request: HttpRequest) -> HttpResponse:
        change()
        return HttpResponse()

    request = RequestFactory().post("/", REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR="6.6.6.6")
    request.user = user
    AuditActorMiddleware(view)(request)


@pytest.fixture
def mention(brand) -> Mention:
    return make_mention(
        brand=brand,
        text="@NorthwindHelp my parcel is lost",
        author=make_author(username="pia", name="Pia Lund"),
    )


# --- changes to keywords, credentials and users ----------------------------------------------


def test_a_keyword_change_names_who_changed_what_from_where(keyword, admin_user):
    LogEntry.objects.all().delete()  # the keyword's creation, outside any request

    def change_query() -> None:
        keyword.query = "@NorthwindHelp -job"
        keyword.save()

    as_request_by(admin_user, change_query)

    (entry,) = LogEntry.objects.all()
    assert entry.actor == admin_user
    # The connection's address: X-Forwarded-For is the client's own word without a proxy.
    assert entry.remote_addr == "198.51.100.9"
    assert audit_entry_sentence(entry) == (
        "adam changed keyword 'Northwind Coffee: @NorthwindHelp -job' "
        "query: '@NorthwindHelp' → '@NorthwindHelp -job'"
    )


def test_saving_a_keyword_unchanged_logs_nothing(keyword, admin_user):
    LogEntry.objects.all().delete()

    as_request_by(admin_user, keyword.save)

    assert not LogEntry.objects.exists()


def logentry_text() -> str:
    """Every column of every audit entry, as PostgreSQL holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(entry)::text FROM auditlog_logentry AS entry")
        return "\n".join(row[0] for row in cursor.fetchall())


def stored_ciphertexts(table: str, column: str, pk: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}"::text FROM "{table}" WHERE id = %s', [pk])
        raw = cursor.fetchone()[0]
    # Fernet tokens, as stored (one per value of a JSON object of credentials).
    return [part for part in json.loads(raw).values()] if raw.startswith("{") else [raw]


def test_source_credentials_log_that_they_changed_never_their_value(client, admin_user, brand):
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    LogEntry.objects.all().delete()

    response = client.post(
        reverse("admin:listening_source_add"),
        {
            "brand": brand.pk,
            "platform": Platform.MASTODON,
            "name": "Mastodon",
            "base_url": "https://mastodon.example",
            "account_handle": "",
            "credentials": json.dumps({"access_token": SOURCE_SECRET}),
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    source = Source.objects.get(name="Mastodon")

    def replace_token() -> None:
        source.credentials = {"access_token": SOURCE_SECRET + "-rotated"}
        source.save()

    as_request_by(admin_user, replace_token)

    created, changed = LogEntry.objects.get_for_object(source).order_by("id")
    assert (created.action, created.actor) == (LogEntry.Action.CREATE, admin_user)
    assert created.changes["credentials"] == ["(none)", "(hidden)"]
    assert (changed.action, changed.actor) == (LogEntry.Action.UPDATE, admin_user)
    assert changed.changes == {"credentials": ["(hidden)", "(hidden)"]}
    assert audit_entry_sentence(changed) == (
        "adam changed source 'Northwind Coffee: Mastodon (Mastodon)' "
        "credentials: '(hidden)' → '(hidden)'"
    )
    dump = logentry_text()
    assert SOURCE_SECRET not in dump
    for ciphertext in stored_ciphertexts("listening_source", "credentials", source.pk):
        assert ciphertext.startswith("gAAAAA") and ciphertext not in dump
    assert "gAAAAA" not in dump


def test_brand_x_credentials_are_masked_and_their_removal_logged(admin_user):
    brand = Brand.objects.create(name="Southwind Tea", x_bearer_token=BRAND_SECRET)
    ciphertext = stored_ciphertexts("listening_brand", "x_bearer_token", brand.pk)[0]

    def remove_token() -> None:
        brand.x_bearer_token = ""
        brand.save()

    as_request_by(admin_user, remove_token)

    created, removed = LogEntry.objects.get_for_object(brand).order_by("id")
    assert created.actor is None and created.changes["x_bearer_token"] == ["(none)", "(hidden)"]
    assert removed.actor == admin_user
    assert removed.changes == {"x_bearer_token": ["(hidden)", "(none)"]}
    dump = logentry_text()
    assert BRAND_SECRET not in dump and ciphertext not in dump


def test_role_and_team_membership_changes_are_logged_and_passwords_are_not(
    admin_user, agent, brand
):
    team = Team.objects.create(brand=brand, name="Billing")
    LogEntry.objects.all().delete()

    def promote_and_join() -> None:
        agent.groups.add(Group.objects.get(name="supervisor"))
        team.members.add(agent)
        agent.set_password("a brand new passphrase 77")
        agent.save()

    as_request_by(admin_user, promote_and_join)

    entries = list(LogEntry.objects.order_by("id"))
    assert [entry.actor for entry in entries] == [admin_user, admin_user]
    assert [audit_entry_sentence(entry) for entry in entries] == [
        "adam changed user 'alice' added supervisor to groups",
        "adam changed team 'Northwind Coffee: Billing' added alice to members",
    ]
    agent.refresh_from_db()
    assert agent.password.split("$")[-1] not in logentry_text()


# --- the desk's events -----------------------------------------------------------------------


def test_a_claim_is_one_entry_and_renewing_it_adds_none(mention, agent):
    assert mention_claim(mention_id=mention.pk, agent=agent).won

    entry = only_entry()
    assert entry.actor == agent and entry.additional_data["event"] == AuditEvent.CLAIM
    assert entry.content_type.model_class() is Mention and entry.object_id == mention.pk
    assert audit_entry_sentence(entry) == f"alice claimed mention #{mention.pk}"

    assert mention_claim(mention_id=mention.pk, agent=agent).won  # a renewal
    assert desk_entries().count() == 1


def test_a_refused_claim_logs_nothing(mention, agent, other_agent):
    mention_claim(mention_id=mention.pk, agent=agent)
    LogEntry.objects.all().delete()

    assert not mention_claim(mention_id=mention.pk, agent=other_agent).won
    assert not mention_release(mention_id=mention.pk, agent=other_agent)
    assert not mention_close(mention_id=mention.pk, agent=other_agent, outcome="spam")

    assert not desk_entries().exists()


def test_a_rolled_back_claim_leaves_no_entry(mention, agent):
    with pytest.raises(RuntimeError), transaction.atomic():
        assert mention_claim(mention_id=mention.pk, agent=agent).won
        assert desk_entries().count() == 1  # written inside the claim's transaction
        raise RuntimeError("the request failed after the claim")

    assert not desk_entries().exists()
    assert Mention.objects.get(pk=mention.pk).status == MentionStatus.NEW


def test_claim_next_logs_the_mention_it_handed_out_and_nothing_when_the_queue_is_empty(
    mention, agent
):
    with CaptureQueriesContext(connection) as queries:
        claimed = mention_claim_next(agent=agent)

    assert claimed.pk == mention.pk
    entry = only_entry()
    assert (entry.actor, entry.additional_data["event"]) == (agent, AuditEvent.CLAIM_NEXT)
    assert audit_entry_sentence(entry) == f"alice took mention #{mention.pk} with claim next"
    # One statement claims and records: no second round trip while the row is locked.
    writes = [
        q["sql"] for q in queries.captured_queries if "UPDATE" in q["sql"] or "INSERT" in q["sql"]
    ]
    assert len(writes) == 1 and 'INSERT INTO "auditlog_logentry"' in writes[0]

    assert mention_claim_next(agent=agent) is None
    assert desk_entries().count() == 1


def test_entries_name_the_mention_type_the_database_has_not_one_a_process_remembers(brand, agent):
    # A worker that outlives the database's content types (a restore into a fresh database,
    # a test run's flush) remembers ids that are gone: the entry must not use them.
    real = ContentType.objects.get_for_model(Mention)
    ContentType.objects.clear_cache()
    ContentType.objects._add_to_cache(  # what a long-lived process would hold
        connection.alias, ContentType(pk=real.pk + 10_000, app_label="listening", model="mention")
    )
    try:
        first, second = (make_mention(brand=brand, text=f"hi Northwind {n}") for n in (1, 2))
        mention_claim(mention_id=first.pk, agent=agent)
        mention_claim_next(agent=agent)
    finally:
        ContentType.objects.clear_cache()

    entries = LogEntry.objects.filter(additional_data__has_key="event")
    assert sorted(entries.values_list("object_id", "content_type_id")) == [
        (first.pk, real.pk),
        (second.pk, real.pk),
    ]


def test_claim_next_writes_the_entry_a_claim_would_column_by_column(brand, agent):
    """claim next writes its entry in SQL of its own: it must be the entry audit_record
    writes, request address and all."""
    by_claim, by_claim_next = (make_mention(brand=brand, text=f"hi Northwind {n}") for n in (1, 2))
    agent.email = "alice@example.com"
    agent.save()

    def claim_both() -> None:
        mention_claim(mention_id=by_claim.pk, agent=agent)
        mention_claim_next(agent=agent)

    as_request_by(agent, claim_both, address="192.0.2.44")

    claim, claim_next = (
        LogEntry.objects.get(object_id=pk, additional_data__has_key="event")
        for pk in (by_claim.pk, by_claim_next.pk)
    )
    skip = {"id", "object_pk", "object_id", "object_repr", "additional_data", "timestamp"}
    fields = [f.attname for f in LogEntry._meta.concrete_fields if f.attname not in skip]
    assert {f: getattr(claim_next, f) for f in fields} == {f: getattr(claim, f) for f in fields}
    assert claim_next.remote_addr == "192.0.2.44"
    assert claim_next.actor_email == "alice@example.com"
    assert (claim_next.object_pk, claim_next.object_repr) == (
        str(by_claim_next.pk),
        f"mention #{by_claim_next.pk}",
    )
    assert claim_next.additional_data == {
        **claim.additional_data,
        "event": "claim_next",
        "mention_id": by_claim_next.pk,
    }


@pytest.mark.django_db(transaction=True)
def test_agents_racing_for_claim_next_get_one_entry_each(brand):
    for n in range(6):
        make_mention(brand=brand, text=f"hello Northwind {n}")
    agents = [_user(f"racer{n}", "agent") for n in range(5)]

    handed = all_at_once(lambda agent: mention_claim_next(agent=agent), agents)

    entries = desk_entries().filter(additional_data__event=AuditEvent.CLAIM_NEXT)
    assert sorted((e.actor_id, e.object_id) for e in entries) == sorted(
        (agent.pk, mention.pk) for agent, mention in zip(agents, handed, strict=True)
    )


def test_an_assignment_names_the_supervisor_the_assignee_and_the_previous_holder(
    client, mention, agent, other_agent, supervisor
):
    mention_claim(mention_id=mention.pk, agent=agent)
    LogEntry.objects.all().delete()
    client.force_login(supervisor)

    client.post(reverse("responses:assign", args=[mention.pk]), {"assignee": other_agent.pk})

    assert Mention.objects.get(pk=mention.pk).claimed_by == other_agent
    entry = only_entry()
    assert entry.actor == supervisor
    assert audit_entry_sentence(entry) == (
        f"sofia assigned mention #{mention.pk} to bob (held by alice)"
    )


def test_assigning_a_closed_mention_logs_nothing(mention, agent, supervisor):
    mention_close(mention_id=mention.pk, agent=agent, outcome="spam")
    LogEntry.objects.all().delete()

    assert not mention_assign(mention_id=mention.pk, assignee=agent, assigned_by=supervisor)

    assert not desk_entries().exists()


def test_release_and_close_read_as_what_the_agent_did(brand, agent):
    released, resolved, ignored, spam = (
        make_mention(brand=brand, text=f"hello Northwind {n}") for n in range(4)
    )
    mention_claim(mention_id=released.pk, agent=agent)
    LogEntry.objects.all().delete()

    assert mention_release(mention_id=released.pk, agent=agent)
    assert mention_close(mention_id=resolved.pk, agent=agent, outcome="resolved")
    assert mention_close(mention_id=ignored.pk, agent=agent, outcome="no_reply_needed")
    assert mention_close(mention_id=spam.pk, agent=agent, outcome="spam")

    entries = desk_entries().order_by("id")
    assert all(entry.actor == agent for entry in entries)
    assert [audit_entry_sentence(entry) for entry in entries] == [
        f"alice released mention #{released.pk}",
        f"alice resolved mention #{resolved.pk}",
        f"alice closed mention #{ignored.pk}: no reply needed",
        f"alice marked mention #{spam.pk} as spam",
    ]


def test_lapsed_claims_are_logged_with_their_holders_in_one_insert(brand, agent, other_agent):
    first, second, still_held = (
        make_mention(brand=brand, text=f"hello Northwind {n}") for n in range(3)
    )
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        mention_claim(mention_id=first.pk, agent=agent)
        mention_claim(mention_id=second.pk, agent=other_agent)
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        mention_claim(mention_id=still_held.pk, agent=agent)
    LogEntry.objects.all().delete()

    lapse = start + timedelta(minutes=django_settings.CLAIM_LEASE_MINUTES, seconds=1)
    with CaptureQueriesContext(connection) as queries:
        assert claims_release_expired(now=lapse) == 2

    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    entries = desk_entries().order_by("object_id")
    assert [(e.object_id, e.actor) for e in entries] == [(first.pk, None), (second.pk, None)]
    assert [audit_entry_sentence(e) for e in entries] == [
        f"alice's claim on mention #{first.pk} lapsed: it went back to the queue",
        f"bob's claim on mention #{second.pk} lapsed: it went back to the queue",
    ]
    assert claims_release_expired(now=lapse) == 0
    assert desk_entries().count() == 2


def test_a_send_and_its_undo_are_one_entry_each(mention, agent, settings):
    settings.REPLY_UNDO_SECONDS = 30
    reply = reply_submit(mention_id=mention.pk, agent=agent, text=REPLY)
    sent = only_entry()
    assert sent.actor == agent and sent.content_type.model_class() is Reply
    assert audit_entry_sentence(sent) == f"alice sent reply #{reply.pk} to mention #{mention.pk}"

    assert reply_undo(reply_id=reply.pk, agent=agent) is not None

    undone = desk_entries().latest("id")
    assert desk_entries().count() == 2 and undone.actor == agent
    assert audit_entry_sentence(undone) == f"alice undid reply #{reply.pk} to mention #{mention.pk}"


@pytest.fixture
def tweet_mention(x_sim, brand) -> Mention:
    tweet = x_sim.add_tweet(text="@NorthwindHelp my order is late", author=customer("gus", "Gus"))
    return make_mention(
        brand=brand,
        text=tweet["text"],
        external_id=tweet["id"],
        author=make_author(username="gus", name="Gus"),
    )


def test_the_post_on_the_platform_is_logged_as_earshots(x_sim, tweet_mention, agent, settings):
    settings.REPLY_UNDO_SECONDS = 0
    reply = reply_submit(mention_id=tweet_mention.pk, agent=agent, text=REPLY_GUS)

    posted = reply_post(reply_id=reply.pk, give_up_on_transient=False)

    entry = desk_entries().latest("id")
    assert desk_entries().count() == 2 and entry.actor is None
    assert audit_entry_sentence(entry) == (
        f"Earshot posted reply #{reply.pk} to mention #{tweet_mention.pk} on X "
        f"(its id there: {posted.external_id})"
    )
    assert len(x_sim.received_posts) == 1


def test_a_failed_post_is_logged_with_the_platforms_reason(x_sim, tweet_mention, agent, settings):
    settings.REPLY_UNDO_SECONDS = 0
    reply = reply_submit(mention_id=tweet_mention.pk, agent=agent, text=REPLY_GUS)
    x_sim.fail_next(
        403, {"detail": "You are not allowed to create a Tweet with duplicate content."}
    )

    reply_post(reply_id=reply.pk, give_up_on_transient=False)

    entry = desk_entries().latest("id")
    assert desk_entries().count() == 2 and entry.actor is None
    assert entry.additional_data["event"] == AuditEvent.REPLY_FAILED
    assert audit_entry_sentence(entry).startswith(
        f"Earshot could not post reply #{reply.pk} to mention #{tweet_mention.pk} on X: '"
    )
    assert "duplicate content" in audit_entry_sentence(entry)
    assert x_sim.received_posts == []


def test_a_refused_reply_logs_nothing(mention, agent):
    with pytest.raises(ReplyNeedsReview):
        reply_submit(
            mention_id=mention.pk,
            agent=agent,
            text="Did you call our support line? Per our policy refunds take 10 days. ^AM",
        )
    assert not desk_entries().exists()


def test_sending_past_the_tone_guard_is_one_entry_with_the_warnings_and_the_reason(brand, agent):
    mention = make_mention(
        brand=brand,
        text="@NorthwindHelp my refund never came, this is ridiculous",
        author=make_author(username="rae", name="Rae"),
    )

    reply = reply_submit(
        mention_id=mention.pk,
        agent=agent,
        text="Did you call our support line? Per our policy refunds take 10 days. ^AM",
        override_reason="Rae asked for the policy",
    )

    entry = only_entry()
    assert entry.actor == agent
    assert entry.additional_data["event"] == AuditEvent.TONE_OVERRIDE
    assert entry.additional_data["warnings"] == reply.warnings_overridden == ["blame", "no_name"]
    assert audit_entry_sentence(entry) == (
        f"alice sent reply #{reply.pk} to mention #{mention.pk} past the tone guard's "
        "warnings (blame, no name), giving the reason 'Rae asked for the policy'"
    )


def test_approvals_and_send_backs_name_the_reviewer_and_the_author(
    brand, agent, supervisor, mention
):
    brand.replies_need_approval = True
    brand.save()
    agent.groups.add(Group.objects.get(name=NEEDS_APPROVAL))
    first = reply_submit(mention_id=mention.pk, agent=agent, text=REPLY)
    reply_return(reply_id=first.pk, reviewer=supervisor, note="Ask for the order number.")
    second = reply_submit(mention_id=mention.pk, agent=agent, text=REPLY)
    reply_approve(reply_id=second.pk, reviewer=supervisor, text=REPLY + " Thanks!")

    entries = desk_entries().order_by("id")
    assert [entry.actor for entry in entries] == [agent, supervisor, agent, supervisor]
    m = mention.pk
    assert [audit_entry_sentence(entry) for entry in entries] == [
        f"alice sent reply #{first.pk} to mention #{m} for approval",
        f"sofia sent reply #{first.pk} to mention #{m} back to alice: 'Ask for the order number.'",
        f"alice sent reply #{second.pk} to mention #{m} for approval",
        f"sofia approved reply #{second.pk} by alice to mention #{m}, edited",
    ]


def test_a_refused_approval_logs_nothing(brand, agent, other_agent, mention):
    brand.replies_need_approval = True
    brand.save()
    agent.groups.add(Group.objects.get(name=NEEDS_APPROVAL))
    reply = reply_submit(mention_id=mention.pk, agent=agent, text=REPLY)
    LogEntry.objects.all().delete()

    with pytest.raises(Exception, match="Only a supervisor"):
        reply_approve(reply_id=reply.pk, reviewer=other_agent)

    assert not desk_entries().exists()
    assert Reply.objects.get(pk=reply.pk).status == ReplyStatus.AWAITING_APPROVAL


def test_marking_a_mention_handled_is_logged(mention, agent):
    reply = reply_mark_handled(mention_id=mention.pk, agent=agent)

    entry = only_entry()
    assert entry.actor == agent and entry.object_id == reply.pk
    assert audit_entry_sentence(entry) == (
        f"alice marked mention #{mention.pk} answered on its platform"
    )


# --- the page --------------------------------------------------------------------------------


def test_only_supervisors_and_admins_open_the_log(client, agent, outsider):
    for user in (agent, outsider):
        client.force_login(user)
        assert client.get(reverse("responses:audit")).status_code == 403


def test_supervisors_see_the_desk_and_admins_everything(
    client, keyword, mention, agent, supervisor, admin_user
):
    mention_claim(mention_id=mention.pk, agent=agent)
    url = reverse("responses:audit")

    client.force_login(supervisor)
    page = client.get(url).content.decode()
    assert f"alice claimed mention #{mention.pk}" in page
    assert "keyword" not in page.split("<table")[1]

    client.force_login(admin_user)
    page = client.get(url).content.decode()
    assert f"alice claimed mention #{mention.pk}" in page
    assert "created keyword &#x27;Northwind Coffee: @NorthwindHelp&#x27;" in page


def rows(response) -> list[str]:
    """The sentences of the page's rows, newest first."""
    html = response.content.decode()
    return [
        part.split("</td>")[0].split(" <a href")[0]
        for part in html.split('<td class="audit-sentence">')[1:]
    ]


def test_filters_by_who_what_object_text_and_day(client, brand, agent, other_agent, admin_user):
    a, b = (make_mention(brand=brand, text=f"hello Northwind {n}") for n in range(2))
    day_one = datetime(2026, 3, 2, 12, tzinfo=UTC)
    with time_machine.travel(day_one, tick=False):
        mention_claim(mention_id=a.pk, agent=agent)
    with time_machine.travel(day_one + timedelta(days=1), tick=False):
        mention_release(mention_id=a.pk, agent=agent)
        mention_claim(mention_id=b.pk, agent=other_agent)
    with time_machine.travel(day_one + timedelta(days=2), tick=False):
        mention_close(mention_id=b.pk, agent=other_agent, outcome="spam")
    client.force_login(admin_user)
    url = reverse("responses:audit")

    assert rows(client.get(url, {"actor": agent.pk})) == [
        f"alice released mention #{a.pk}",
        f"alice claimed mention #{a.pk}",
    ]
    assert rows(client.get(url, {"event": "claim"})) == [
        f"bob claimed mention #{b.pk}",
        f"alice claimed mention #{a.pk}",
    ]
    assert rows(client.get(url, {"q": f"mention #{b.pk}"})) == [
        f"bob marked mention #{b.pk} as spam",
        f"bob claimed mention #{b.pk}",
    ]
    assert rows(client.get(url, {"since": "2026-03-03", "until": "2026-03-03"})) == [
        f"bob claimed mention #{b.pk}",
        f"alice released mention #{a.pk}",
    ]
    assert rows(client.get(url, {"object_type": "reply"})) == []
    assert len(rows(client.get(url, {"object_type": "mention"}))) == 4


def test_model_changes_filter_by_action_and_object_type(
    client, keyword, mention, agent, admin_user
):
    mention_claim(mention_id=mention.pk, agent=agent)
    client.force_login(admin_user)
    url = reverse("responses:audit")

    created = rows(client.get(url, {"event": "created", "object_type": "keyword"}))

    assert created == ["Someone outside the web pages (a command or a background task) created "
                       "keyword &#x27;Northwind Coffee: @NorthwindHelp&#x27;"]  # fmt: skip
    assert rows(client.get(url, {"event": "changed", "object_type": "keyword"})) == []


def test_a_bad_filter_is_explained_and_logged(client, supervisor, caplog):
    client.force_login(supervisor)

    response = client.get(
        reverse("responses:audit"), {"since": "2026-03-05", "until": "2026-03-01"}
    )

    assert response.status_code == 200
    assert "“From” must be on or before “To”." in response.content.decode()
    assert "audit log: filter refused for sofia" in caplog.text


def test_a_supervisor_cannot_ask_for_admin_only_entries(client, supervisor, keyword):
    client.force_login(supervisor)

    response = client.get(reverse("responses:audit"), {"object_type": "keyword"})

    assert "About: Select a valid choice." in response.content.decode()
    assert "keyword" not in response.content.decode().split("<table")[1]


def test_htmx_gets_only_the_rows_newest_first_page_by_page(client, brand, agent, supervisor):
    mentions = [make_mention(brand=brand, text=f"hello Northwind {n}") for n in range(51)]
    start = datetime.now(UTC) - timedelta(hours=1)
    for n, mention in enumerate(mentions):
        with time_machine.travel(start + timedelta(seconds=n), tick=False):
            mention_claim(mention_id=mention.pk, agent=agent)
    client.force_login(supervisor)
    url = reverse("responses:audit")

    first = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="audit-rows")
    second = client.get(url, {"page": 2}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="audit-rows")

    html = first.content.decode()
    assert html.lstrip().startswith('<div id="audit-rows">') and "<h1>" not in html
    assert rows(first)[0] == f"alice claimed mention #{mentions[-1].pk}"
    assert len(rows(first)) == 50 and "Page 1 of 2" in html
    assert rows(second) == [f"alice claimed mention #{mentions[0].pk}"]


# --- retention -------------------------------------------------------------------------------


def test_retention_deletes_only_entries_past_the_setting_and_is_idempotent(brand, agent, settings):
    old, recent = (make_mention(brand=brand, text=f"hello Northwind {n}") for n in range(2))
    now = datetime(2026, 6, 1, 3, 30, tzinfo=UTC)
    with time_machine.travel(now - timedelta(days=366), tick=False):
        mention_claim(mention_id=old.pk, agent=agent)
    with time_machine.travel(now - timedelta(days=364), tick=False):
        mention_claim(mention_id=recent.pk, agent=agent)
    settings.AUDIT_RETENTION_DAYS = 365

    with time_machine.travel(now, tick=False):
        assert delete_expired_audit_entries() == 1
        assert delete_expired_audit_entries() == 0

    assert list(desk_entries().values_list("object_id", flat=True)) == [recent.pk]


def test_retention_zero_keeps_everything(brand, agent, settings):
    mention = make_mention(brand=brand, text="hello Northwind")
    with time_machine.travel(datetime(2020, 1, 1, tzinfo=UTC), tick=False):
        mention_claim(mention_id=mention.pk, agent=agent)
    settings.AUDIT_RETENTION_DAYS = 0

    assert audit_entries_delete_expired() == 0
    assert desk_entries().count() == 1


def test_beat_runs_the_retention_task():
    scheduled = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert "responses.tasks.delete_expired_audit_entries" in scheduled


def test_the_selector_hides_admin_entries_from_supervisors(keyword, mention, agent):
    mention_claim(mention_id=mention.pk, agent=agent)

    desk = audit_entries(viewer_is_admin=False, filters=AuditFilters())
    everything = audit_entries(viewer_is_admin=True, filters=AuditFilters())

    assert [entry.additional_data["event"] for entry in desk] == [AuditEvent.CLAIM]
    assert everything.count() > desk.count()


# --- through a real worker -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_worker_logs_lapsed_claims_and_applies_retention(celery_worker_process, brand, agent):
    lapsed = make_mention(brand=brand, text="hello Northwind")
    real_now = datetime.now(UTC)
    lease = timedelta(minutes=django_settings.CLAIM_LEASE_MINUTES)
    with time_machine.travel(real_now - lease - timedelta(minutes=1), tick=False):
        mention_claim(mention_id=lapsed.pk, agent=agent)
    with time_machine.travel(real_now - timedelta(days=400), tick=False):
        long_closed = make_mention(brand=brand, text="hello again Northwind")
        mention_close(mention_id=long_closed.pk, agent=agent, outcome="spam")

    release_expired_claims.delay()
    wait_until(lambda: desk_entries().filter(additional_data__event="claim_lapsed").exists())
    delete_expired_audit_entries.delay()
    wait_until(lambda: not desk_entries().filter(object_id=long_closed.pk).exists())

    assert [(e.object_id, e.additional_data["event"]) for e in desk_entries().order_by("id")] == [
        (lapsed.pk, "claim"),
        (lapsed.pk, "claim_lapsed"),
    ]
    (entry,) = desk_entries().filter(additional_data__event="claim_lapsed")
    assert entry.actor is None and entry.additional_data["previous_holder"] == "alice"
