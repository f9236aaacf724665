"""`resource_hand_over`: an admin hands a resource to another member of its team, audited."""

from __future__ import annotations

import pytest

from requests_app.errors import NotAllowed, ValidationFailed
from requests_app.models import AuditEvent, Resource
from requests_app.services import resource_hand_over
from tests.factories import active_namespace

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def namespace(atlas, requester):
    return active_namespace(atlas, requester, name="checkout")


def hand_over(resource, new_owner, actor, reason="dana moved to another project"):
    return resource_hand_over(resource=resource, new_owner=new_owner, actor=actor, reason=reason)


def test_an_admin_hands_a_resource_to_a_teammate(namespace, teammate, admin_user):
    hand_over(namespace, teammate, admin_user)
    assert Resource.objects.get(pk=namespace.pk).owner == teammate
    event = AuditEvent.objects.get(verb="handed_over")
    assert (event.actor, event.resource, event.detail) == (
        admin_user,
        namespace,
        "owner: dana → tom: dana moved to another project",
    )


def test_only_admins_hand_over(namespace, requester, teammate):
    with pytest.raises(NotAllowed):
        hand_over(namespace, teammate, requester)


@pytest.mark.parametrize("who", ["outsider", "inactive_teammate"])
def test_the_new_owner_is_an_active_member_of_the_team(namespace, admin_user, outsider, teammate, who):
    if who == "inactive_teammate":
        teammate.is_active = False
        teammate.save()
    new_owner = outsider if who == "outsider" else teammate
    with pytest.raises(ValidationFailed) as caught:
        hand_over(namespace, new_owner, admin_user)
    assert "owner" in caught.value.errors
    assert Resource.objects.get(pk=namespace.pk).owner.username == "dana"
    assert not AuditEvent.objects.filter(verb="handed_over").exists()


def test_a_reason_is_required_and_a_reclaimed_resource_is_not_handed_over(namespace, teammate, admin_user):
    with pytest.raises(ValidationFailed, match="reason"):
        hand_over(namespace, teammate, admin_user, reason="")
    Resource.objects.filter(pk=namespace.pk).update(state="reclaimed")
    with pytest.raises(ValidationFailed, match="nothing to hand over"):
        hand_over(namespace, teammate, admin_user)


def test_handing_to_the_team_clears_the_owner(namespace, admin_user):
    hand_over(namespace, None, admin_user, reason="the team owns it")
    assert Resource.objects.get(pk=namespace.pk).owner is None
    assert AuditEvent.objects.get(verb="handed_over").detail == "owner: dana → team atlas: the team owns it"
