"""What a reclamation pass reads: the leases that are due and a bounded batch of owners, never the whole
table (issue 12); notices still go once per threshold and hand-overs within the documented bound."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext

from leases.models import Lease
from leases.services.expiry_notices import send_notices
from leases.services.extension import lease_extend
from leases.services.opening import database_now, lease_open
from leases.services.reclaim_pass import reclaim_pass
from leases.services.report import ReclaimReport
from requests_app.models import AuditEvent
from tests.factories import UserFactory, active_namespace

pytestmark = pytest.mark.django_db


def leased(team, owner, name: str) -> Lease:
    return lease_open(resource=active_namespace(team, owner, name=name))


def far_leases(team, count: int, start: int = 0) -> None:
    """Leases a month from expiry, each with its own owner (still in the team)."""
    for i in range(start, start + count):
        owner = UserFactory(username=f"far{i}", groups=["team-atlas"])
        lease = leased(team, owner, f"far{i}")
        lease.expires_at += timedelta(days=30)
        lease.save()


def queries_of_a_pass(*, dry_run: bool, now) -> int:
    with CaptureQueriesContext(connection) as captured:
        reclaim_pass(now=now, dry_run=dry_run)
    return len(captured)


@pytest.fixture
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# A dry run reads and decides without calling the cluster; a real pass needs the Kubernetes API server.
@pytest.mark.parametrize("dry_run", [True, pytest.param(False, marks=pytest.mark.integration)])
def test_a_pass_costs_the_same_with_10_or_200_leases_far_from_expiry(
    atlas, requester, settings, fast_passwords, dry_run
):
    settings.LEASEHOLD_HANDOVER_BATCH = 5
    due = leased(atlas, requester, "due")
    now = due.expires_at - timedelta(days=3)  # one notice due, nothing else
    far_leases(atlas, 10)

    def measured() -> int:
        Lease.objects.filter(pk=due.pk).update(notices_sent=[], next_notice_at=due.next_notice_at)
        return queries_of_a_pass(dry_run=dry_run, now=now)

    measured()  # the first pass also fills caches (content types)
    with_10 = measured()
    far_leases(atlas, 190, start=10)
    assert measured() == with_10


def test_the_notice_step_loads_only_the_leases_crossing_a_threshold(atlas, requester, settings):
    settings.LEASE_NOTICE_DAYS = [7, 1]
    for i in range(20):  # in the notice window, the 7-day notice already sent
        lease = leased(atlas, requester, f"notified{i}")
        lease.notices_sent = [7]
        lease.save()
    crossing = leased(atlas, requester, "crossing")
    now = crossing.expires_at - timedelta(days=3)
    Lease.objects.exclude(pk=crossing.pk).update(expires_at=crossing.expires_at)
    for lease in Lease.objects.exclude(pk=crossing.pk):
        lease.save()
    loaded: list[int] = []

    def count(sender, instance, **kwargs):
        loaded.append(instance.pk)

    post_init.connect(count, sender=Lease)
    try:
        send_notices(now=now, dry_run=False, report=ReclaimReport(now=now, dry_run=False))
    finally:
        post_init.disconnect(count, sender=Lease)
    assert set(loaded) == {crossing.pk}
    assert AuditEvent.objects.filter(verb="lease_notice").count() == 1


@pytest.mark.integration  # needs the Kubernetes API server (the pass runs in full)
def test_a_notice_goes_once_per_threshold_also_after_an_extension(atlas, requester, teammate, settings):
    settings.LEASE_NOTICE_DAYS = [7, 1]
    lease = leased(atlas, requester, "checkout")
    expires = lease.expires_at

    def notices() -> list[str]:
        return list(
            AuditEvent.objects.filter(verb="lease_notice").order_by("at", "pk").values_list("detail", flat=True)
        )

    reclaim_pass(now=expires - timedelta(days=8))
    assert notices() == []
    for _ in range(3):
        reclaim_pass(now=expires - timedelta(days=6))
    reclaim_pass(now=expires - timedelta(hours=20))
    reclaim_pass(now=expires - timedelta(hours=19))
    assert [n.split(" ")[0] for n in notices()] == ["7", "1"]

    moment = expires - timedelta(hours=18)
    cluster_mode = settings.LEASEHOLD_CLUSTER
    settings.LEASEHOLD_CLUSTER = "local"
    settings.LEASEHOLD_LOCAL_KUBECONFIG = "/nonexistent/kubeconfig"  # the re-stamp fails; the extension stands
    outcome, lease = lease_extend(resource=lease.resource, actor=teammate, days=10, justification="demo", now=moment)
    settings.LEASEHOLD_CLUSTER = cluster_mode  # a pass checks the cluster first: give it the test cluster
    assert outcome == "extended"
    assert lease.next_notice_at == lease.expires_at - timedelta(days=7)
    reclaim_pass(now=lease.expires_at - timedelta(days=8))
    assert len(notices()) == 2
    reclaim_pass(now=lease.expires_at - timedelta(days=6))
    reclaim_pass(now=lease.expires_at - timedelta(days=5))
    assert [n.split(" ")[0] for n in notices()] == ["7", "1", "7"]
    lease.refresh_from_db()
    assert lease.notices_sent == [7] and lease.next_notice_at == lease.expires_at - timedelta(days=1)


@pytest.mark.integration  # needs the Kubernetes API server (the pass runs in full)
def test_an_owner_who_left_is_handed_over_within_owners_over_batch_passes(atlas, requester, settings, fast_passwords):
    settings.LEASEHOLD_HANDOVER_BATCH = 2
    mine = leased(atlas, requester, "mine")
    for i in range(3):
        leased(atlas, UserFactory(username=f"dev{i}", groups=["team-atlas"]), f"theirs{i}")
    now = database_now()
    reclaim_pass(now=now)  # checks two of the four owners
    requester.groups.clear()
    handed = [reclaim_pass(now=now + timedelta(hours=h)).handed_over for h in (1, 2)]  # ⌈4 ÷ 2⌉ passes
    assert sum(len(h) for h in handed) == 1
    mine.resource.refresh_from_db()
    assert mine.resource.owner is None
    assert AuditEvent.objects.filter(verb="owner_left", resource=mine.resource).count() == 1


@pytest.mark.integration  # needs the Kubernetes API server (the pass runs in full)
def test_a_deactivated_owner_is_handed_over_at_the_next_pass_whatever_the_batch(
    atlas, requester, settings, fast_passwords
):
    settings.LEASEHOLD_HANDOVER_BATCH = 1
    mine = leased(atlas, requester, "mine")
    for i in range(3):
        leased(atlas, UserFactory(username=f"dev{i}", groups=["team-atlas"]), f"theirs{i}")
    now = database_now()
    reclaim_pass(now=now)  # the batch of one: requester (never checked, lowest id) is checked now
    requester.is_active = False
    requester.save()
    assert len(reclaim_pass(now=now + timedelta(hours=1)).handed_over) == 1
    mine.resource.refresh_from_db()
    assert mine.resource.owner is None


def test_the_groups_of_a_batch_of_local_owners_are_read_in_one_query(atlas, requester, settings, fast_passwords):
    """Local accounts' groups are read for the whole batch at once (a directory account is re-read from
    LDAP on its own): a batch of 2 owners and one of 20 cost a pass the same queries."""
    far_leases(atlas, 20)
    now = database_now()

    def with_batch(size: int) -> int:
        settings.LEASEHOLD_HANDOVER_BATCH = size
        return queries_of_a_pass(dry_run=True, now=now)

    with_batch(2)  # caches (content types)
    assert with_batch(2) == with_batch(20)
    # And still judged on their groups: one who left the team is listed for hand-over.
    UserFactory._meta.model.objects.get(username="far3").groups.clear()
    assert len(reclaim_pass(now=now, dry_run=True).handed_over) == 1
