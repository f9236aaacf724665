"""Replacing the policy: `manage.py load_policy` and Django admin validate alike, keep every version,
audit who changed what, and leave the policy in force alone when the new one is bad."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from approvals.models import ApprovalPolicy
from approvals.policy import DEFAULT_POLICY_YAML
from requests_app.models import AuditEvent

pytestmark = pytest.mark.django_db

STRICT = "rules:\n- {name: strict, match: {}, steps: [{name: platform, group: platform-approvers, required: 2}]}\n"
BAD = "rules:\n- {name: strict, match: {environment: [prod], colour: [red]}, steps: []}\n"


@pytest.fixture
def policy_file(tmp_path):
    def write(text: str):
        path = tmp_path / "policy.yaml"
        path.write_text(text)
        return path

    return write


def test_load_policy_puts_a_new_version_in_force_and_audits_it(policy_file, file_request, capsys):
    call_command("load_policy", str(policy_file(STRICT)))
    assert "is in force: strict (1 step)" in capsys.readouterr().out
    assert file_request().approval_chain.rule == "strict"
    event = AuditEvent.objects.get(verb="policy_loaded")
    assert event.target_id == str(ApprovalPolicy.objects.get().pk)
    assert "rules strict" in event.detail
    assert "+- {name: strict" in event.detail  # the diff against what was in force


def test_a_bad_policy_file_is_refused_naming_rule_and_field_and_the_old_one_stays(policy_file, file_request):
    call_command("load_policy", str(policy_file(STRICT)))
    with pytest.raises(CommandError, match=r"rule 'strict': match\.colour .*The policy in force is unchanged"):
        call_command("load_policy", str(policy_file(BAD)))
    assert ApprovalPolicy.objects.count() == 1
    assert AuditEvent.objects.filter(verb="policy_loaded").count() == 1
    assert file_request(environment="prod").approval_chain.rule == "strict"


def test_a_missing_policy_file_is_refused(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("load_policy", str(tmp_path / "nope.yaml"))
    assert not ApprovalPolicy.objects.exists()


def test_admin_shows_the_policy_in_force_as_the_start_of_a_new_version(client, admin_user):
    client.force_login(admin_user)
    page = client.get(reverse("admin:approvals_approvalpolicy_add")).content.decode()
    assert "small-dev" in page and "team-{team}-leads" in page
    assert DEFAULT_POLICY_YAML.splitlines()[0] in page


def test_admin_saves_a_valid_policy_as_a_new_version_with_who_and_what(client, admin_user, load, file_request):
    first = load(DEFAULT_POLICY_YAML)
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:approvals_approvalpolicy_add"), {"source": STRICT, "note": "two approvers for everything"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    newest = ApprovalPolicy.objects.order_by("-id").first()
    assert newest.pk != first.pk
    assert (newest.origin, newest.loaded_by, newest.note) == ("admin", admin_user, "two approvers for everything")
    first.refresh_from_db()
    assert first.source == DEFAULT_POLICY_YAML  # the earlier version is kept as it was
    event = AuditEvent.objects.filter(verb="policy_loaded").latest("id")
    assert event.actor_name == "ada"
    assert "two approvers for everything" in event.detail
    assert "-  - name: small-dev" in event.detail and "+- {name: strict" in event.detail
    assert file_request().approval_chain.rule == "strict"


def test_admin_refuses_a_bad_policy_naming_rule_and_field(client, admin_user, load):
    load(STRICT)
    client.force_login(admin_user)
    response = client.post(reverse("admin:approvals_approvalpolicy_add"), {"source": BAD, "note": ""})
    assert response.status_code == 200
    assert "rule &#x27;strict&#x27;: match.colour is not a known field" in response.content.decode()
    assert ApprovalPolicy.objects.count() == 1
    assert AuditEvent.objects.filter(verb="policy_loaded").count() == 1


def test_a_stored_policy_version_cannot_be_edited_or_deleted_in_the_admin(client, admin_user, load):
    version = load(STRICT)
    client.force_login(admin_user)
    change = reverse("admin:approvals_approvalpolicy_change", args=[version.pk])
    assert client.get(change).status_code == 200  # visible
    client.post(change, {"source": BAD})
    version.refresh_from_db()
    assert version.source == STRICT
    assert client.get(reverse("admin:approvals_approvalpolicy_delete", args=[version.pk])).status_code == 403


@pytest.mark.parametrize("persona", ["requester", "approver", "outsider"])
def test_only_admins_reach_the_policy_in_the_admin(client, request, persona):
    client.force_login(request.getfixturevalue(persona))
    response = client.post(reverse("admin:approvals_approvalpolicy_add"), {"source": STRICT})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not ApprovalPolicy.objects.exists()
