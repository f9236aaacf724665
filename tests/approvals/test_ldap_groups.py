"""Group membership comes from the real directory at decision time (the slapd that `make test` starts,
loaded from platform/ldap/dev-directory.ldif)."""

from __future__ import annotations

import os

import pytest

from approvals.models import Decision
from approvals.services import step_decide
from requests_app.errors import NotAllowed
from requests_app.models import AuditEvent
from tests.conftest import require_env
from tests.factories import UserFactory

from .conftest import pending_step

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

GROUPS = "ou=groups,dc=example,dc=org"


@pytest.fixture
def directory(settings):
    """The real LDAP backend in front of the model backend, as production runs."""
    require_env("LDAP_URI", "LDAP_BIND_DN", "LDAP_BIND_PASSWORD")
    settings.AUTHENTICATION_BACKENDS = [
        "django_auth_ldap.backend.LDAPBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]


@pytest.fixture
def ldap_admin(directory):
    import ldap

    conn = ldap.initialize(os.environ["LDAP_URI"])
    conn.simple_bind_s(os.environ["LDAP_BIND_DN"], os.environ["LDAP_BIND_PASSWORD"])
    yield conn
    conn.unbind_s()


def member(uid: str) -> bytes:
    return f"uid={uid},ou=people,dc=example,dc=org".encode()


@pytest.fixture
def change_group(ldap_admin):
    """Add or remove a member of a directory group for one test; the directory is restored afterwards."""
    import ldap

    undo: list[tuple[int, str, bytes]] = []

    def change(op: str, group: str, uid: str) -> None:
        dn = f"cn={group},{GROUPS}"
        mod = ldap.MOD_DELETE if op == "remove" else ldap.MOD_ADD
        ldap_admin.modify_s(dn, [(mod, "member", [member(uid)])])
        undo.append((ldap.MOD_ADD if op == "remove" else ldap.MOD_DELETE, dn, member(uid)))

    try:
        yield change
    finally:
        for mod, dn, value in reversed(undo):
            ldap_admin.modify_s(dn, [(mod, "member", [value])])


def test_a_directory_member_decides(directory, file_request, approver):
    request = file_request()
    step_decide(step_id=pending_step(request).pk, user=approver, verdict="approve")
    request.refresh_from_db()
    assert request.state == "approved"


def test_someone_removed_from_the_group_in_ldap_cannot_decide_at_once(change_group, file_request, approver):
    request = file_request()
    assert approver.groups.filter(name="platform-approvers").exists()  # Django still thinks so
    change_group("remove", "platform-approvers", "frank")
    with pytest.raises(NotAllowed, match="Only members of platform-approvers"):
        step_decide(step_id=pending_step(request).pk, user=approver, verdict="approve")
    assert not Decision.objects.exists()
    assert AuditEvent.objects.filter(verb="decision_refused", actor_name="frank").count() == 1
    # The decision re-mirrored the directory: the queue no longer offers the step either.
    assert not approver.groups.filter(name="platform-approvers").exists()


def test_someone_added_to_the_group_in_ldap_may_decide_without_logging_in_again(change_group, file_request):
    sam = UserFactory(username="sam", groups=["security-approvers"])
    request = file_request()
    change_group("add", "platform-approvers", "sam")
    step_decide(step_id=pending_step(request).pk, user=sam, verdict="approve")
    request.refresh_from_db()
    assert request.state == "approved"


def test_an_account_the_directory_does_not_know_cannot_decide(directory, file_request):
    # A local account that claims the group in Django only.
    ghost = UserFactory(username="ghost", groups=["platform-approvers"])
    with pytest.raises(NotAllowed, match="directory does not confirm"):
        step_decide(step_id=pending_step(file_request()).pk, user=ghost, verdict="approve")
    assert AuditEvent.objects.filter(verb="decision_refused", actor_name="ghost").count() == 1


@pytest.mark.parametrize("removed", ["frank", "paula"])
def test_a_delegation_ends_when_either_side_is_removed_from_the_group_in_ldap(
    change_group, file_request, approver, second_approver, removed
):
    from django.utils import timezone

    from approvals.models import Delegation

    today = timezone.localdate()
    delegation = Delegation.objects.create(delegator=approver, delegate=second_approver, starts_on=today, ends_on=today)
    step = pending_step(file_request())
    change_group("remove", "platform-approvers", removed)
    if removed == "frank":
        # Paula still decides, in her own name only.
        step_decide(step_id=step.pk, user=second_approver, verdict="approve")
        decision = Decision.objects.get()
        assert (decision.approver, decision.on_behalf_of) == (second_approver, None)
    else:
        with pytest.raises(NotAllowed):
            step_decide(step_id=step.pk, user=second_approver, verdict="approve")
        assert not Decision.objects.exists()
    delegation.refresh_from_db()
    assert delegation.revoked_at is not None
    assert AuditEvent.objects.filter(verb="delegation_ended", target_id=str(delegation.pk)).count() == 1
