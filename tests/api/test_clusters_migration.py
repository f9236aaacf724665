"""Migration 0013 on an install with data: the single cluster of today's settings becomes `default`, serving
every environment, and every existing request and resource is on it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("requests_app", "0012_kind_choices_from_registry")]
AFTER = [("requests_app", "0013_clusters")]


@pytest.mark.django_db(transaction=True)
def test_existing_requests_and_resources_land_on_the_default_cluster(settings, tmp_path, monkeypatch):
    kubeconfig = tmp_path / "kubeconfig"
    settings.LEASEHOLD_CLUSTER = "kubeconfig"
    executor = MigrationExecutor(connection)
    try:
        executor.migrate(BEFORE)
        old = executor.loader.project_state(BEFORE).apps
        group = old.get_model("auth", "Group").objects.create(name="team-mig")
        team = old.get_model("requests_app", "Team").objects.create(slug="mig", group=group)
        user = old.get_model("auth", "User").objects.create(username="mig")
        Request = old.get_model("requests_app", "ResourceRequest")
        fields = dict(team=team, requester=user, environment="prod", lease_days=1, kind="namespace", state="active")
        request = Request.objects.create(name="web", **fields)
        Request.objects.create(name="api", **fields)
        old.get_model("requests_app", "Resource").objects.create(
            kind="namespace", name="web", team=team, environment="prod", lease_days=1, created_by_request=request
        )
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps
        default = new.get_model("requests_app", "Cluster").objects.get()
        assert (default.name, default.environments, default.accepting) == (
            "default",
            ["dev", "test", "staging", "prod"],
            True,
        )
        assert (default.auth, default.credentials_path) == ("kubeconfig", str(kubeconfig))
        for model in ("ResourceRequest", "Resource"):
            rows = new.get_model("requests_app", model).objects.values_list("cluster_id", flat=True)
            assert set(rows) == {default.pk}, model
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
