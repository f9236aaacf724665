""" "NaN" and "Infinity" are numbers to the Kubernetes client's parser (and to our copy of it), not quantities
to Kubernetes: a spec or a policy that gives one is refused with a field message, never a 500."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from approvals.policy import PolicyError, parse_policy
from tests.factories import UserFactory, team

NON_FINITE = ["NaN", "nanm", "Infinity", "-Infinity", "inf", "infGi"]


@pytest.mark.django_db
@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("key", ["cpu", "memory", "storage"])
def test_a_namespace_request_with_a_non_finite_quantity_is_a_400_naming_the_field(value, key):
    team("atlas")
    client = APIClient()
    client.force_authenticate(UserFactory(username="dana", groups=["team-atlas"]))
    spec = {"cpu": "1", "memory": "1Gi", "storage": "1Gi", key: value}
    body = {"kind": "namespace", "team": "atlas", "name": "q", "environment": "dev", "lease_days": 7, "spec": spec}
    response = client.post("/api/v1/requests/", body, format="json")
    assert response.status_code == 400, response.content
    assert "is not a positive Kubernetes quantity" in response.json()[f"spec.{key}"][0]


@pytest.mark.parametrize("value", NON_FINITE)
def test_a_policy_with_a_non_finite_quantity_is_refused(value):
    source = f"rules:\n  - name: r\n    match: {{max_cpu: '{value}'}}\n    steps: []\n"
    with pytest.raises(PolicyError, match="max_cpu is not a Kubernetes quantity"):
        parse_policy(source)


@pytest.mark.django_db
@pytest.mark.parametrize("value", [*NON_FINITE, "lots", "-2", "0"])
def test_a_team_budget_that_is_not_a_quantity_is_a_form_error(value):
    from django.core.exceptions import ValidationError

    atlas = team("atlas")
    atlas.budget_memory = value
    with pytest.raises(ValidationError) as caught:
        atlas.full_clean()
    assert "budget_memory" in caught.value.message_dict
    atlas.budget_memory, atlas.budget_cpu = "64Gi", ""  # a quantity, and blank for no limit
    atlas.full_clean()
