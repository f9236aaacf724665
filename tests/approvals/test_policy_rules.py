"""Routing: each rule shape picks the right chain when a request is filed; steps are frozen on it."""

from __future__ import annotations

import re

import pytest

from approvals.models import ApprovalStep
from approvals.policy import PolicyError, parse_policy
from approvals.services import step_decide
from requests_app.models import AuditEvent, Cluster

from .conftest import pending_step, steps_of

pytestmark = pytest.mark.django_db

SHAPES = """
rules:
  - {name: by-kind, match: {kind: [database]}, steps: [{name: dba, group: dbas}]}
  - {name: by-team, match: {team: [zephyr]}, steps: [{name: z, group: zephyr-leads}]}
  - {name: by-plan, match: {plan: [large]}, steps: [{name: big, group: capacity}]}
  - {name: by-cpu, match: {max_cpu: "1"}, steps: []}
  - {name: by-memory, match: {max_memory: 2Gi}, steps: []}
  - {name: by-storage, match: {max_storage: 5Gi}, steps: []}
  - {name: by-lease, match: {max_lease_days: 3}, steps: []}
  - {name: by-env, match: {environment: [staging]}, steps: [{name: stage, group: "team-{team}-leads"}]}
  - {name: default, match: {}, steps: [{name: platform, group: platform-approvers, required: 1}]}
"""


@pytest.fixture
def shapes(load):
    return load(SHAPES)


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"spec": {"plan": "large"}}, "by-plan"),
        ({"spec": {"cpu": "1", "memory": "8Gi", "storage": "50Gi"}}, "by-cpu"),
        ({"spec": {"cpu": "2", "memory": "2Gi", "storage": "50Gi"}}, "by-memory"),
        ({"spec": {"cpu": "2", "memory": "3Gi", "storage": "5Gi"}}, "by-storage"),
        ({"lease_days": 3}, "by-lease"),
        ({"lease_days": 4}, "default"),
        ({"environment": "staging"}, "by-env"),
        ({"spec": {"cpu": "2", "memory": "3Gi", "storage": "6Gi"}}, "default"),
        ({}, "default"),
    ],
)
def test_each_rule_shape_routes_its_requests(shapes, file_request, overrides, rule):
    request = file_request(**overrides)
    assert request.approval_chain.rule == rule


def test_a_team_rule_matches_only_that_team(shapes, file_request, outsider, zephyr):
    theirs = file_request(by=outsider, team="zephyr")
    ours = file_request()
    assert (theirs.approval_chain.rule, ours.approval_chain.rule) == ("by-team", "default")


def test_the_team_placeholder_is_resolved_in_step_groups(shapes, file_request):
    request = file_request(environment="staging")
    assert steps_of(request) == [("stage", "team-atlas-leads", 1, "pending")]


def test_the_first_matching_rule_wins(load, file_request):
    load(
        "rules:\n"
        "- {name: first, match: {environment: [dev]}, steps: [{name: a, group: g1}]}\n"
        "- {name: second, match: {environment: [dev], plan: [medium]}, steps: [{name: b, group: g2}]}\n"
    )
    assert file_request().approval_chain.rule == "first"


def test_a_rule_without_steps_approves_at_once_and_the_audit_names_it(file_request):
    request = file_request(spec={"plan": "small"})
    request.refresh_from_db()
    assert request.state == "approved"
    assert not request.approval_steps.exists()
    assert AuditEvent.objects.get(request=request, verb="approved").detail == "auto-approved by rule small-dev"
    assert "rule small-dev" in AuditEvent.objects.get(request=request, verb="approval_routed").detail


def test_the_default_policy_routes_prod_through_three_steps(file_request):
    request = file_request(environment="prod")
    assert request.approval_chain.rule == "prod"
    assert steps_of(request) == [
        ("team-lead", "team-atlas-leads", 1, "pending"),
        ("platform", "platform-approvers", 1, "waiting"),
        ("security", "security-approvers", 2, "waiting"),
    ]


def test_an_escalation_group_is_frozen_on_the_step(load, file_request):
    load("rules:\n- {name: r, steps: [{name: s, group: 'team-{team}-leads', escalate_to: 'team-{team}-heads'}]}\n")
    step = pending_step(file_request())
    assert (step.group, step.escalate_to) == ("team-atlas-leads", "team-atlas-heads")


def test_a_later_policy_change_does_not_rewrite_open_chains(load, file_request, lead, approver, second_approver):
    request = file_request(environment="prod")
    load("rules:\n- {name: everything, steps: [{name: only, group: platform-approvers, required: 2}]}\n")
    chain_steps = steps_of(request)
    step_decide(step_id=pending_step(request).pk, user=lead, verdict="approve")
    request.refresh_from_db()
    assert request.approval_chain.rule == "prod"
    assert [s[:3] for s in steps_of(request)] == [s[:3] for s in chain_steps]
    assert pending_step(request).name == "platform"
    # ...while a request filed now follows the new policy.
    assert steps_of(file_request(environment="prod")) == [("only", "platform-approvers", 2, "pending")]
    assert ApprovalStep.objects.filter(request=request, name="only").count() == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n- {name: a, match: {environment: [production]}}", "rule 'a': match.environment has unknown value"),
        ("rules:\n- {name: a, match: {kind: [vm]}}", "rule 'a': match.kind has unknown value"),
        ("rules:\n- {name: a, match: {plan: [huge]}}", "rule 'a': match.plan has unknown value"),
        ("rules:\n- {name: a, match: {max_lease_days: 0}}", "rule 'a': match.max_lease_days"),
        ("rules:\n- {name: a, steps: [{name: s, group: 'team-{tem}'}]}", "rule 'a' step #1: 'group' may only contain"),
        ("rules:\n- {name: a, steps: [{name: s, group: g, escalate_to: [x]}]}", "rule 'a' step #1: 'escalate_to'"),
        ("rules:\n- {name: a, steps: [{name: s, group: g, escalate_to: g}]}", "another group"),
        ("rules:\n- {name: a, steps: [{name: s, group: g, wait: 3}]}", "rule 'a' step #1: unknown field(s): wait"),
        ("rules:\n- {name: all, match: {}}\n- {name: b, match: {environment: [dev]}}", "rule 'b': can never match"),
    ],
)
def test_a_bad_rule_is_refused_naming_rule_and_field(text, message):
    with pytest.raises(PolicyError, match=re.escape(message)):
        parse_policy(text)


def test_a_cluster_rule_gives_a_regulated_cluster_its_own_chain(load, file_request):
    """`cluster: [names]` matches the cluster the request is placed on: named, or chosen by placement."""
    Cluster.objects.create(name="vault", environments=["dev"])
    load(
        """
rules:
  - {name: regulated, match: {cluster: [vault]}, steps: [{name: security, group: security-approvers, required: 2}]}
  - {name: default, match: {}, steps: [{name: platform, group: platform-approvers, required: 1}]}
"""
    )
    on_vault = file_request(cluster="vault")
    on_default = file_request(cluster="default")
    assert (on_vault.cluster.name, on_vault.approval_chain.rule) == ("vault", "regulated")
    assert steps_of(on_vault) == [("security", "security-approvers", 2, "pending")]
    assert (on_default.cluster.name, on_default.approval_chain.rule) == ("default", "default")


def test_a_policy_naming_an_unregistered_cluster_is_refused(load):
    """A typo in a cluster name would make the rule never match; loading it is refused, nothing changes."""
    with pytest.raises(PolicyError, match="not registered: vualt"):
        load("rules:\n  - {name: r, match: {cluster: [vualt]}, steps: []}\n")
    assert not AuditEvent.objects.filter(verb="policy_loaded").exists()
