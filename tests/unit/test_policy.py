import re
from decimal import Decimal

import pytest

from approvals.policy import DEFAULT_POLICY, PolicyError, RequestFacts, parse_policy


def facts(**kw):
    base = {"kind": "namespace", "environment": "dev", "team": "atlas", "plan": "small", "lease_days": 14}
    base.update(kw)
    return RequestFacts(**base)


def test_a_small_dev_namespace_needs_no_steps():
    rule = DEFAULT_POLICY.rule_for(facts())
    assert (rule.name, rule.steps) == ("small-dev", ())


def test_a_longer_lease_goes_to_the_platform_team():
    rule = DEFAULT_POLICY.rule_for(facts(lease_days=15))
    assert rule.name == "default"
    assert [(s.name, s.group, s.required) for s in rule.steps] == [("platform", "platform-approvers", 1)]


def test_prod_needs_three_steps_with_the_team_lead_group_resolved():
    rule = DEFAULT_POLICY.rule_for(facts(environment="prod"))
    assert [s.group_for("atlas") for s in rule.steps] == [
        "team-atlas-leads",
        "platform-approvers",
        "security-approvers",
    ]
    assert rule.steps[2].required == 2


def test_quantity_matches_compare_as_quantities():
    policy = parse_policy(
        "rules:\n"
        "- {name: tiny, match: {max_cpu: '1500m'}, steps: []}\n"
        "- {name: rest, match: {}, steps: [{name: p, group: g}]}\n"
    )
    assert policy.rule_for(facts(quantities={"cpu": Decimal("1")})).name == "tiny"
    assert policy.rule_for(facts(quantities={"cpu": Decimal("2")})).name == "rest"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", "not valid YAML"),
        ("rules: []\nextra: 1", "unknown top-level"),
        ("rules:\n- {name: a, match: {colour: [red]}, steps: []}", "rule 'a': match.colour"),
        ("rules:\n- {name: a, steps: [{name: s, group: g, required: 0}]}", "rule 'a' step #1: 'required'"),
        ("rules:\n- {name: a, steps: [{name: s}]}", "'group' is required"),
        ("rules:\n- {name: a, steps: []}\n- {name: a, steps: []}", "used twice"),
        ("rules:\n- {match: {}}", "rule #1: 'name' is required"),
        ("rules:\n- {name: a, match: {max_memory: lots}}", "not a Kubernetes quantity"),
    ],
)
def test_a_bad_policy_is_refused_naming_rule_and_field(text, message):
    with pytest.raises(PolicyError, match=re.escape(message)):
        parse_policy(text)


def test_a_cluster_rule_matches_only_the_clusters_it_names():
    policy = parse_policy(
        "rules:\n"
        "- {name: regulated, match: {cluster: [vault, vault-b]}, steps: [{name: s, group: security}]}\n"
        "- {name: rest, match: {}, steps: []}\n"
    )
    assert policy.rule_for(facts(cluster="vault-b")).name == "regulated"
    assert policy.rule_for(facts(cluster="default")).name == "rest"
    assert policy.rule_for(facts()).name == "rest"  # facts without a cluster match no cluster rule
    assert policy.cluster_names() == {"vault", "vault-b"}


def test_a_cluster_match_takes_a_single_name_and_refuses_what_is_no_name():
    assert parse_policy("rules:\n- {name: r, match: {cluster: vault}, steps: []}\n").cluster_names() == {"vault"}
    with pytest.raises(PolicyError, match="match.cluster has value"):
        parse_policy("rules:\n- {name: r, match: {cluster: ['prod a']}, steps: []}\n")
