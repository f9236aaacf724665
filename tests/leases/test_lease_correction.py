"""`lease_correct_expiry`: an admin's correction of a lease's expiry, within policy, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from leases.models import Lease
from leases.services.extension import lease_correct_expiry
from leases.services.grace import lease_enter_grace
from leases.services.opening import database_now, lease_open
from requests_app.errors import NotAllowed, ValidationFailed
from requests_app.models import AuditEvent, Resource
from tests.factories import active_child, active_namespace

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_cluster(settings):
    """The re-stamp (and, from grace, the restore) of the objects fails at once; the new expiry stands."""
    settings.LEASEHOLD_CLUSTER = "local"
    settings.LEASEHOLD_LOCAL_KUBECONFIG = "/nonexistent/kubeconfig"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def lease(atlas, requester):
    return lease_open(resource=active_namespace(atlas, requester, name="checkout"))


def child_lease(namespace: Resource, owner, name: str = "orders") -> Lease:
    """An active database in the namespace, with its lease (as provisioning leaves it)."""
    spec = {"namespace": str(namespace.pk), "engine": "postgres", "version": "16", "storage": "1Gi", "plan": "small"}
    return lease_open(resource=active_child(namespace, "database", name, spec, owner=owner, lease_days=7))


def correct(lease: Lease, expires_at, actor, reason: str = "agreed with the team", **kwargs) -> Lease:
    return lease_correct_expiry(lease_id=lease.pk, expires_at=expires_at, actor=actor, reason=reason, **kwargs)


def test_an_admin_moves_the_expiry_and_the_trail_has_before_and_after(lease, admin_user):
    before = lease.expires_at
    Lease.objects.filter(pk=lease.pk).update(notices_sent=[7])
    wanted = before + timedelta(days=10)
    corrected = correct(lease, wanted, admin_user)
    assert (corrected.expires_at, corrected.extensions, corrected.notices_sent) == (wanted, 0, [])
    assert Resource.objects.get(pk=lease.resource_id).lease_expires_at == wanted
    event = AuditEvent.objects.get(verb="lease_corrected")
    assert (event.actor, event.resource_id, event.target_id) == (admin_user, lease.resource_id, str(lease.pk))
    assert f"{before:%Y-%m-%d %H:%M:%S} → {wanted:%Y-%m-%d %H:%M:%S}" in event.detail
    assert event.detail.endswith(": agreed with the team")


def test_only_admins_correct_and_always_with_a_reason(lease, requester, admin_user):
    with pytest.raises(NotAllowed):
        correct(lease, lease.expires_at + timedelta(days=1), requester)
    with pytest.raises(ValidationFailed) as caught:
        correct(lease, lease.expires_at + timedelta(days=1), admin_user, reason=" ")
    assert "reason" in caught.value.errors
    assert not AuditEvent.objects.filter(verb="lease_corrected").exists()


@pytest.mark.parametrize("when", ["past", "beyond_policy"])
def test_an_expiry_in_the_past_or_beyond_policy_is_refused(lease, admin_user, settings, when):
    target = {
        "past": database_now() - timedelta(minutes=1),
        "beyond_policy": lease.starts_at + timedelta(days=settings.LEASE_MAX_TOTAL_DAYS, minutes=1),
    }[when]
    with pytest.raises(ValidationFailed) as caught:
        correct(lease, target, admin_user)
    assert "expires_at" in caught.value.errors
    assert Lease.objects.get(pk=lease.pk).expires_at == lease.expires_at


def test_a_child_never_outlives_its_namespace_nor_the_namespace_its_children(lease, admin_user, requester):
    namespace = lease.resource
    child = child_lease(namespace, requester)
    with pytest.raises(ValidationFailed, match="namespace's lease ends"):
        correct(child, lease.expires_at + timedelta(hours=1), admin_user)
    with pytest.raises(ValidationFailed, match=r"Leases in this namespace end later \(orders\)"):
        correct(lease, child.expires_at - timedelta(hours=1), admin_user)
    correct(child, child.expires_at - timedelta(days=2), admin_user)
    correct(lease, lease.expires_at - timedelta(days=1), admin_user)
    assert AuditEvent.objects.filter(verb="lease_corrected").count() == 2


def test_a_correction_out_of_grace_brings_the_lease_and_resource_back(lease, admin_user):
    now = lease.expires_at + timedelta(minutes=1)
    assert lease_enter_grace(lease_id=lease.pk, now=now)
    wanted = now + timedelta(days=2)
    corrected = correct(lease, wanted, admin_user, now=now)
    resource = Resource.objects.get(pk=lease.resource_id)
    assert (corrected.state, corrected.grace_until, resource.state) == ("active", None, "active")
    verbs = list(AuditEvent.objects.filter(resource=resource).values_list("verb", flat=True))
    assert verbs[-3:] == ["lease_restored", "restored", "lease_corrected"]


def test_a_reclaimed_lease_is_not_corrected_and_an_unchanged_one_writes_nothing(lease, admin_user):
    correct(lease, lease.expires_at, admin_user)
    assert not AuditEvent.objects.filter(verb="lease_corrected").exists()
    Lease.objects.filter(pk=lease.pk).update(state="reclaimed")
    with pytest.raises(ValidationFailed, match="reclaimed"):
        correct(lease, lease.expires_at + timedelta(days=1), admin_user)
