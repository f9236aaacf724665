"""The hand-over check reads one row per owner and team, and hands over only what the owner holds in the
teams they left."""

from __future__ import annotations

import pytest

from leases.services.handover import hand_over_departed
from leases.services.opening import database_now
from leases.services.report import ReclaimReport
from requests_app.models import AuditEvent, Resource
from tests.factories import active_namespace, team

pytestmark = pytest.mark.django_db


def test_an_owner_who_left_one_team_hands_over_only_that_teams_resources(atlas, requester, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    orion = team("orion")
    requester.groups.add(orion.group)
    kept = [active_namespace(atlas, requester, name=f"kept{i}") for i in range(3)]
    left = [active_namespace(orion, requester, name=f"left{i}") for i in range(2)]
    requester.groups.remove(orion.group)
    now = database_now()

    dry = ReclaimReport(now=now, dry_run=True)
    hand_over_departed(dry_run=True, report=dry, now=now)
    assert sorted(dry.handed_over) == [f"namespace orion-left{i} of dana → team orion" for i in range(2)]
    assert Resource.objects.filter(owner=requester).count() == 5

    live = ReclaimReport(now=now, dry_run=False)
    hand_over_departed(dry_run=False, report=live, now=now)

    assert sorted(live.handed_over) == sorted(dry.handed_over)
    assert set(Resource.objects.filter(owner=requester)) == set(kept)
    assert set(Resource.objects.filter(owner__isnull=True)) == set(left)
    assert AuditEvent.objects.filter(verb="owner_left").count() == 2
