"""The approval policy: ordered rules, first match wins (CONTRACT.md §4). Parsing and matching; no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml

from requests_app import kinds
from requests_app.models import Action, Environment
from requests_app.quantities import parse_quantity

DEFAULT_POLICY_YAML = """\
rules:
  - name: small-dev
    match: {action: [create], environment: [dev, test], kind: [namespace], plan: [small], max_lease_days: 14}
    steps: []
  - name: prod
    match: {environment: [prod]}
    steps:
      - {name: team-lead, group: "team-{team}-leads", required: 1}
      - {name: platform, group: platform-approvers, required: 1}
      - {name: security, group: security-approvers, required: 2}
  - name: default
    match: {}
    steps:
      - {name: platform, group: platform-approvers, required: 1}
"""

LIST_KEYS = ("action", "kind", "environment", "team", "plan", "cluster")
QUANTITY_KEYS = {"max_cpu": "cpu", "max_memory": "memory", "max_storage": "storage"}
MATCH_KEYS = (*LIST_KEYS, "max_lease_days", *QUANTITY_KEYS)


# A typo in a closed vocabulary would make a rule silently never match (and, say, route prod requests
# to a laxer rule), so these values are checked against what requests can carry.
def known_values(key: str) -> tuple[str, ...] | None:
    """The values a request can carry under `key` (None: any): the kinds and plans are the registry's."""
    if key == "kind":
        return tuple(kinds.names())
    if key == "plan":
        return tuple(dict.fromkeys(plan for kind in kinds.all() for plan in kind.plans))
    return {"action": tuple(Action.values), "environment": tuple(Environment.values)}.get(key)


PLACEHOLDER = "{team}"


class PolicyError(ValueError):
    """The policy document is invalid; the message names the rule and field."""


@dataclass(frozen=True)
class Step:
    """One step of a rule: `required` approvals from members of `group`; after the escalation delay,
    members of `escalate_to` (optional) are asked too and may decide it."""

    name: str
    group: str
    required: int
    escalate_to: str = ""

    def group_for(self, team: str) -> str:
        return self.group.replace("{team}", team)

    def escalate_to_for(self, team: str) -> str:
        return self.escalate_to.replace("{team}", team)


@dataclass(frozen=True)
class Rule:
    name: str
    match: dict[str, Any]
    steps: tuple[Step, ...]

    def matches(self, facts: RequestFacts) -> bool:
        m = self.match
        for key in LIST_KEYS:
            if key in m and getattr(facts, key) not in m[key]:
                return False
        if "max_lease_days" in m and facts.lease_days > m["max_lease_days"]:
            return False
        for key, fact in QUANTITY_KEYS.items():
            if key in m:
                asked = facts.quantities.get(fact)
                if asked is None or asked > parse_quantity(m[key]):
                    return False
        return True


@dataclass(frozen=True)
class RequestFacts:
    """What a rule can match on, taken from a request."""

    kind: str
    environment: str
    team: str
    plan: str | None
    lease_days: int
    quantities: dict[str, Decimal] = field(default_factory=dict)
    # An extension beyond the lease policy is an `extend` request: the built-in small-dev rule only
    # auto-approves `create`, so going past the limits always needs a person.
    action: str = "create"
    # The name of the cluster the request is placed on.
    cluster: str = ""


# Cluster names are data (Django admin), not a closed vocabulary: parsing checks their shape (a slug);
# loading a policy checks that each is registered (approvals.services.policy_unknown_clusters).
CLUSTER_NAME = re.compile(r"^[-a-zA-Z0-9_]{1,40}$")


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]

    def cluster_names(self) -> set[str]:
        """The cluster names the rules match on."""
        return {name for rule in self.rules for name in rule.match.get("cluster", ())}

    def rule_for(self, facts: RequestFacts) -> Rule:
        for rule in self.rules:
            if rule.matches(facts):
                return rule
        return FALLBACK_RULE

    def names_group(self, name: str) -> bool:
        """Whether some step of this policy (or of the fallback rule) is decided by, or escalated to, the
        group `name`; `{team}` in a step's group stands for any team slug."""
        return any(
            pattern and _group_pattern(pattern).fullmatch(name)
            for rule in (*self.rules, FALLBACK_RULE)
            for step in rule.steps
            for pattern in (step.group, step.escalate_to)
        )


# A policy without a catch-all still routes everything somewhere safe: the platform team.
FALLBACK_RULE = Rule(name="fallback", match={}, steps=(Step("platform", "platform-approvers", 1),))
# What `{team}` may stand for in a group name: a team slug (requests_app.services.TEAM_SLUG).
TEAM_SLUG_PATTERN = r"[a-z0-9](?:[-a-z0-9]{0,38}[a-z0-9])?"


def _group_pattern(group: str) -> re.Pattern[str]:
    return re.compile(TEAM_SLUG_PATTERN.join(re.escape(part) for part in group.split(PLACEHOLDER)))


def _fail(where: str, message: str) -> PolicyError:
    return PolicyError(f"{where}: {message}")


def parse_policy(text: str) -> Policy:
    """Parse and validate a YAML policy. Raises PolicyError naming the rule and field at fault."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise PolicyError("the document must be a mapping with a list under 'rules'")
    unknown_top = set(doc) - {"rules"}
    if unknown_top:
        raise PolicyError(f"unknown top-level field(s): {', '.join(sorted(unknown_top))}")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(doc["rules"], start=1):
        where = f"rule #{index}"
        if not isinstance(raw, dict):
            raise _fail(where, "must be a mapping with name, match and steps")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _fail(where, "'name' is required")
        where = f"rule {name!r}"
        if name in seen:
            raise _fail(where, "the name is used twice")
        seen.add(name)
        unknown = set(raw) - {"name", "match", "steps"}
        if unknown:
            raise _fail(where, f"unknown field(s): {', '.join(sorted(unknown))}")
        match = raw.get("match") or {}
        if not isinstance(match, dict):
            raise _fail(where, "'match' must be a mapping")
        for key, value in match.items():
            if key not in MATCH_KEYS:
                raise _fail(where, f"match.{key} is not a known field ({', '.join(MATCH_KEYS)})")
            if key in LIST_KEYS:
                if isinstance(value, str):
                    match[key] = [value]
                elif not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    raise _fail(where, f"match.{key} must be a list of strings")
                known = known_values(key)
                bad = [v for v in match[key] if known is not None and v not in known]
                if key == "cluster":
                    bad = [v for v in match[key] if not CLUSTER_NAME.match(v)]
                    if bad:
                        raise _fail(where, f"match.cluster has value(s) that are no cluster name: {bad!r}")
                if bad:
                    raise _fail(
                        where,
                        f"match.{key} has unknown value(s) {', '.join(map(repr, bad))} ({', '.join(known or ())})",
                    )
            elif key == "max_lease_days":
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise _fail(where, "match.max_lease_days must be a positive whole number")
            else:
                try:
                    finite = parse_quantity(value).is_finite()
                except (ValueError, TypeError) as exc:
                    raise _fail(where, f"match.{key} is not a Kubernetes quantity: {value!r}") from exc
                if not finite:  # "NaN", "Infinity": the client's parser takes them, Kubernetes does not
                    raise _fail(where, f"match.{key} is not a Kubernetes quantity: {value!r}")
        raw_steps = raw.get("steps", [])
        if not isinstance(raw_steps, list):
            raise _fail(where, "'steps' must be a list (empty: approved at once)")
        steps: list[Step] = []
        step_names: set[str] = set()
        for s_index, s in enumerate(raw_steps, start=1):
            s_where = f"{where} step #{s_index}"
            if not isinstance(s, dict):
                raise _fail(s_where, "must be a mapping with name, group, required and escalate_to (optional)")
            unknown = set(s) - {"name", "group", "required", "escalate_to"}
            if unknown:
                raise _fail(s_where, f"unknown field(s): {', '.join(sorted(unknown))}")
            s_name, group, required = s.get("name"), s.get("group"), s.get("required", 1)
            if not isinstance(s_name, str) or not s_name.strip():
                raise _fail(s_where, "'name' is required")
            if s_name in step_names:
                raise _fail(s_where, f"step name {s_name!r} is used twice")
            step_names.add(s_name)
            if not isinstance(group, str) or not group.strip():
                raise _fail(s_where, "'group' is required")
            _check_group(s_where, "group", group)
            if not isinstance(required, int) or isinstance(required, bool) or required < 1:
                raise _fail(s_where, "'required' must be a whole number of at least 1")
            escalate_to = s.get("escalate_to", "")
            if escalate_to is None:
                escalate_to = ""
            if not isinstance(escalate_to, str):
                raise _fail(s_where, "'escalate_to' must be a group name")
            _check_group(s_where, "escalate_to", escalate_to)
            if escalate_to and escalate_to == group:
                raise _fail(s_where, "'escalate_to' must name another group than 'group'")
            steps.append(Step(name=s_name, group=group, required=required, escalate_to=escalate_to.strip()))
        if rules and not rules[-1].match:
            raise _fail(where, f"can never match: rule {rules[-1].name!r} before it matches every request")
        rules.append(Rule(name=name, match=match, steps=tuple(steps)))
    return Policy(rules=tuple(rules))


def _check_group(where: str, field_name: str, value: str) -> None:
    """Only `{team}` may be substituted into a group name; anything else in braces is a typo."""
    if "{" in value.replace(PLACEHOLDER, "") or "}" in value.replace(PLACEHOLDER, ""):
        raise _fail(where, f"{field_name!r} may only contain the placeholder {PLACEHOLDER}: {value!r}")


DEFAULT_POLICY = parse_policy(DEFAULT_POLICY_YAML)
