from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from config.roles import has_role
from listening.models import Brand, Platform, PollCursor, Source, TrackedKeyword

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
    assert set(
        TrackedKeyword.objects.filter(platform=Platform.X).values_list("query", flat=True)
    ) == {'"Northwind Coffee"', "@NorthwindHelp"}
    # One source and keyword on each other platform, each on its local simulator.
    others = TrackedKeyword.objects.exclude(platform=Platform.X).select_related("source")
    assert sorted(k.platform for k in others) == sorted(
        p for p in Platform.values if p != Platform.X
    )
    assert all(k.source.base_url.startswith("http://127.0.0.1:87") for k in others)
    assert Source.objects.count() == 5
    assert PollCursor.objects.count() == 7
