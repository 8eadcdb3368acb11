from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from config.roles import has_role
from listening.models import Brand, PollCursor, TrackedKeyword

pytestmark = pytest.mark.django_db


def seed() -> dict[str, str]:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return dict(re.findall(r"login: (\w+)\s+password: (\S+)", out.getvalue()))


def test_seeding_twice_keeps_one_of_each_and_prints_working_passwords():
    first = seed()
    second = seed()

    assert set(second) == {"agent", "supervisor", "admin"}
    assert all(first[name] != second[name] for name in second)
    for username, password in second.items():
        user = authenticate(username=username, password=password)
        assert user is not None and has_role(user, username)
        assert authenticate(username=username, password=first[username]) is None
    assert not has_role(authenticate(username="agent", password=second["agent"]), "supervisor")
    (brand,) = Brand.objects.all()
    assert (brand.name, brand.x_handle) == ("Northwind Coffee", "NorthwindHelp")
    assert set(TrackedKeyword.objects.values_list("query", flat=True)) == {
        '"Northwind Coffee"',
        "@NorthwindHelp",
    }
    assert PollCursor.objects.count() == 2
