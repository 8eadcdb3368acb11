"""/people/: invitations by e-mail, roles and teams, deactivation, teams per brand."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import timedelta

import pytest
import time_machine
from auditlog.models import LogEntry
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from listening.models import Team
from responses.models import Invite
from responses.selectors import user_role

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a long enough passphrase 42"


@pytest.fixture
def billing(brand) -> Team:
    return Team.objects.create(brand=brand, name="Billing")


@pytest.fixture
def admin_client(client, admin_user) -> Client:
    client.force_login(admin_user)
    return client


def invite(admin_client: Client, email: str, role: str = "agent", teams=()) -> str:
    """Invite `email` through the page; the token from the e-mail's link."""
    sent = len(mail.outbox)
    response = admin_client.post(
        reverse("responses:invite"),
        {"email": email, "role": role, "teams": [team.pk for team in teams]},
    )
    assert response.status_code == 302, response.content.decode()
    assert len(mail.outbox) == sent + 1
    link = re.search(r"http://testserver/invite/([^/\s]+)/", mail.outbox[-1].body)
    assert link, mail.outbox[-1].body
    return link.group(1)


def accept(token: str, username: str = "nadia", password: str = NEW_PASSWORD):
    return Client().post(
        reverse("invite-accept", args=[token]),
        {"username": username, "password1": password, "password2": password},
    )


def test_an_invite_round_trip(admin_client, admin_user, billing):
    token = invite(admin_client, "Nadia@Example.com", role="agent", teams=[billing])

    (message,) = mail.outbox
    assert message.to == ["Nadia@Example.com"]
    assert message.subject == "You are invited to Earshot"
    assert "as agent in Northwind Coffee: Billing" in message.body
    (row,) = Invite.objects.all()
    # Only the token's hash is stored.
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(Invite.objects.values_list().get())
    assert row.invited_by == admin_user and row.accepted_at is None
    assert row.expires_at - row.created_at == timedelta(days=7)

    invitee = Client()
    page = invitee.get(reverse("invite-accept", args=[token]))
    assert page.status_code == 200
    assert "You are invited as agent, in Northwind Coffee: Billing" in page.content.decode()
    response = invitee.post(
        reverse("invite-accept", args=[token]),
        {"username": "nadia", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == reverse("responses:queue")

    nadia = User.objects.get(username="nadia")
    # Django lowercases the domain only.
    assert nadia.email == "Nadia@example.com" and nadia.check_password(NEW_PASSWORD)
    assert user_role(nadia) == "agent"
    assert list(nadia.teams.all()) == [billing]
    row.refresh_from_db()
    assert row.accepted_by == nadia and row.accepted_at is not None
    # Signed in, with the role: the queue opens, the report (supervisor) does not.
    assert invitee.get(reverse("responses:queue")).status_code == 200
    assert invitee.get(reverse("responses:report")).status_code == 403


def test_an_invite_works_once(admin_client):
    token = invite(admin_client, "nadia@example.com")
    assert accept(token).status_code == 302

    again = Client().get(reverse("invite-accept", args=[token]))
    assert again.status_code == 410
    assert "This invitation has been used already. Log in instead." in again.content.decode()
    second = accept(token, username="nadia2")
    assert second.status_code == 410
    assert not User.objects.filter(username="nadia2").exists()


def test_an_invite_expires_after_the_configured_days(admin_client, settings):
    settings.INVITE_VALID_DAYS = 2
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        token = invite(admin_client, "late@example.com")
    with time_machine.travel(now + timedelta(days=2) - timedelta(minutes=1), tick=False):
        assert Client().get(reverse("invite-accept", args=[token])).status_code == 200
    with time_machine.travel(now + timedelta(days=2, minutes=1), tick=False):
        page = Client().get(reverse("invite-accept", args=[token]))
        assert page.status_code == 410
        assert "This invitation has expired." in page.content.decode()
        assert accept(token, username="late").status_code == 410
    assert not User.objects.filter(username="late").exists()
    assert Invite.objects.get().accepted_at is None


def test_an_unknown_token_is_explained(client, caplog):
    with caplog.at_level(logging.INFO, logger="responses.people_views"):
        page = client.get(reverse("invite-accept", args=["not-a-real-token"]))
    assert page.status_code == 410
    assert "This invitation link is not valid" in page.content.decode()
    assert "invitation link refused" in caplog.text


def test_inviting_the_same_address_again_replaces_the_pending_invite(admin_client, billing):
    first = invite(admin_client, "nadia@example.com", role="agent")
    second = invite(admin_client, "NADIA@example.com", role="supervisor", teams=[billing])
    assert Invite.objects.count() == 1
    assert accept(first).status_code == 410
    assert not User.objects.filter(username="nadia").exists()
    assert accept(second).status_code == 302
    assert user_role(User.objects.get(username="nadia")) == "supervisor"


def test_a_weak_password_is_refused_with_the_validators_reason(admin_client, caplog):
    token = invite(admin_client, "nadia@example.com")
    with caplog.at_level(logging.INFO, logger="responses.people_views"):
        response = accept(token, password="12345678")
    assert response.status_code == 400
    html = response.content.decode()
    assert "This password is too common." in html
    assert "This password is entirely numeric." in html
    assert "invitation sign-up refused" in caplog.text
    assert not User.objects.filter(username="nadia").exists()
    assert Invite.objects.get().accepted_at is None


def test_a_taken_username_is_refused(admin_client, agent):
    token = invite(admin_client, "nadia@example.com")
    response = accept(token, username=agent.username)
    assert response.status_code == 400
    assert "A user with that username already exists." in response.content.decode()
    assert Invite.objects.get().accepted_at is None


def test_an_address_with_an_account_is_not_invited(admin_client, agent):
    agent.email = "alice@example.com"
    agent.save()
    response = admin_client.post(
        reverse("responses:invite"), {"email": "Alice@example.com", "role": "agent"}
    )
    assert response.status_code == 400
    assert "Alice@example.com already has an account." in response.content.decode()
    assert not mail.outbox and not Invite.objects.exists()


def test_only_admins_invite(client, supervisor):
    client.force_login(supervisor)
    response = client.post(reverse("responses:invite"), {"email": "x@example.com", "role": "admin"})
    assert response.status_code == 403
    assert not mail.outbox and not Invite.objects.exists()


def test_an_admin_sees_people_with_role_teams_and_last_login(admin_client, agent, billing):
    billing.members.add(agent)
    html = admin_client.get(reverse("responses:people")).content.decode()
    row = re.search(rf'<tr id="person-{agent.pk}".*?</tr>', html, re.DOTALL).group(0)
    assert 'data-role="agent"' in row and "Northwind Coffee: Billing" in row and "never" in row
    assert '<a href="/people/">People</a>' in html


def test_an_admin_changes_a_role_and_teams(admin_client, agent, billing):
    response = admin_client.post(
        reverse("responses:person", args=[agent.pk]), {"role": "supervisor", "teams": [billing.pk]}
    )
    assert response.status_code == 302
    agent = User.objects.get(pk=agent.pk)
    assert user_role(agent) == "supervisor" and not agent.is_staff
    assert list(agent.teams.all()) == [billing]
    assert list(agent.groups.values_list("name", flat=True)) == ["supervisor"]

    # Admins get into Django's admin too, which asks for is_staff.
    admin_client.post(reverse("responses:person", args=[agent.pk]), {"role": "admin"})
    agent = User.objects.get(pk=agent.pk)
    assert user_role(agent) == "admin" and agent.is_staff

    admin_client.post(reverse("responses:person", args=[agent.pk]), {"role": "", "teams": []})
    agent = User.objects.get(pk=agent.pk)
    assert user_role(agent) == "" and not agent.teams.exists() and not agent.is_staff


def test_an_admin_cannot_change_their_own_role(admin_client, admin_user):
    response = admin_client.post(
        reverse("responses:person", args=[admin_user.pk]), {"role": "agent"}, follow=True
    )
    assert "You cannot change your own role: ask another admin." in response.content.decode()
    assert user_role(User.objects.get(pk=admin_user.pk)) == "admin"


def test_an_unknown_role_is_refused(admin_client, agent):
    response = admin_client.post(reverse("responses:person", args=[agent.pk]), {"role": "owner"})
    assert response.status_code == 400
    assert "Select a valid choice. owner is not one of the available choices." in (
        response.content.decode()
    )
    assert user_role(User.objects.get(pk=agent.pk)) == "agent"


def test_deactivated_people_cannot_sign_in_and_come_back_when_reactivated(admin_client, agent):
    agents_browser = Client()
    agents_browser.force_login(agent)
    assert agents_browser.get(reverse("responses:queue")).status_code == 200

    admin_client.post(reverse("responses:person-deactivate", args=[agent.pk]))
    assert not User.objects.get(pk=agent.pk).is_active
    assert User.objects.filter(pk=agent.pk).exists()  # never deleted
    response = agents_browser.get(reverse("responses:queue"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))

    admin_client.post(reverse("responses:person-reactivate", args=[agent.pk]))
    agent = User.objects.get(pk=agent.pk)
    assert agent.is_active and user_role(agent) == "agent"


def test_an_admin_cannot_deactivate_themselves(admin_client, admin_user):
    response = admin_client.post(
        reverse("responses:person-deactivate", args=[admin_user.pk]), follow=True
    )
    assert "You cannot deactivate yourself." in response.content.decode()
    assert User.objects.get(pk=admin_user.pk).is_active


def test_teams_are_created_renamed_and_staffed_per_brand(admin_client, brand, agent, other_agent):
    response = admin_client.post(
        reverse("responses:team-create"), {"brand": brand.pk, "name": "Billing"}
    )
    team = Team.objects.get(brand=brand, name="Billing")
    assert response["Location"] == reverse("responses:team", args=[team.pk])

    duplicate = admin_client.post(
        reverse("responses:team-create"), {"brand": brand.pk, "name": "Billing"}
    )
    assert duplicate.status_code == 400
    assert "Northwind Coffee already has a team called “Billing”." in duplicate.content.decode()
    assert Team.objects.count() == 1

    admin_client.post(
        reverse("responses:team", args=[team.pk]),
        {"name": "Billing and refunds", "members": [agent.pk, other_agent.pk]},
    )
    team.refresh_from_db()
    assert team.name == "Billing and refunds"
    assert set(team.members.all()) == {agent, other_agent}

    admin_client.post(reverse("responses:team", args=[team.pk]), {"name": "Billing", "members": []})
    team.refresh_from_db()
    assert team.name == "Billing" and not team.members.exists()


def test_a_withdrawn_invite_no_longer_works(admin_client):
    token = invite(admin_client, "nadia@example.com")
    admin_client.post(reverse("responses:invite-revoke", args=[Invite.objects.get().pk]))
    assert not Invite.objects.exists()
    assert accept(token).status_code == 410
    assert not User.objects.filter(username="nadia").exists()


def test_a_team_cannot_be_renamed_to_a_name_its_brand_has(admin_client, brand, billing):
    shipping = Team.objects.create(brand=brand, name="Shipping")
    response = admin_client.post(
        reverse("responses:team", args=[shipping.pk]), {"name": "Billing", "members": []}
    )
    assert response.status_code == 400
    assert "Northwind Coffee already has a team called “Billing”." in response.content.decode()
    shipping.refresh_from_db()
    assert shipping.name == "Shipping"


def test_deactivation_is_in_the_audit_log_with_who_did_it(admin_client, admin_user, agent):
    admin_client.post(reverse("responses:person-deactivate", args=[agent.pk]))
    (entry,) = [
        entry
        for entry in LogEntry.objects.get_for_object(agent)
        if entry.action == LogEntry.Action.UPDATE and "is_active" in entry.changes_dict
    ]
    assert entry.actor == admin_user
    assert entry.changes_dict["is_active"] == ["True", "False"]


def test_an_invite_that_cannot_be_mailed_is_not_kept(admin_client, settings):
    # A mail server that refuses the connection (nothing listens on port 9 here).
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9
    response = admin_client.post(
        reverse("responses:invite"), {"email": "nadia@example.com", "role": "agent"}
    )
    assert response.status_code == 502
    assert "The invitation could not be e-mailed" in response.content.decode()
    assert not Invite.objects.exists()
