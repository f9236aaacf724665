"""The forecast says what will happen, to what (by the names people know), and when; it collapses what
will not happen into one line, and predicts what the pass will fail at: a cluster it cannot reach, and
backups with nowhere to run. On the real API server (the backup storage is read from it)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from kubernetes.client.exceptions import ApiException

from leases.models import Lease
from leases.services.opening import database_now, lease_open
from leases.services.reclaim_pass import reclaim_pass
from provisioning import cluster
from tests.factories import active_child, active_namespace

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_past_grace(atlas, requester):
    """A namespace `atlas-checkout` and its database `orders`, both past grace (due for deletion)."""
    namespace = active_namespace(atlas, requester, name="checkout", plan="medium")
    orders = active_child(namespace, "database", "orders", {"version": "16", "storage": "1Gi", "plan": "small"})
    now = database_now()
    for resource in (namespace, orders):
        lease_open(resource=resource)
        Lease.objects.filter(resource=resource).update(
            state="grace", expires_at=now - timedelta(days=4), grace_until=now - timedelta(hours=1)
        )
        type(resource).objects.filter(pk=resource.pk).update(state="grace")
    return namespace, orders


@pytest.fixture
def backup_storage(settings, core):
    """A backup namespace of this test's own name, not created yet; deleted afterwards."""
    name = f"lh-backups-{uuid.uuid4().hex[:8]}"
    settings.LEASEHOLD_BACKUP_NAMESPACE = settings.LEASEHOLD_BACKUP_PVC = name
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def test_it_names_what_happens_to_what_and_when_and_collapses_the_rest(client, database_past_grace, requester):
    client.force_login(requester)
    page = client.get("/leases/forecast/").content.decode()

    due = page.split('Grace over: backed up (databases) and deleted, at the next pass <span class="muted">(2)')[1]
    assert "atlas-checkout / orders</a>" in due and "atlas-checkout</a>" in due
    assert "grace ended" in due
    assert page.count('<div class="card">') == 1  # one outcome has something in it: one card
    assert "Nothing." not in page and "RECLAIM_MAX_PER_RUN" not in page
    assert (
        "Otherwise: no expiry notice to send, nothing to quarantine, nothing being deleted, no lease ends, "
        "no grace period ends." in page
    )


def test_it_predicts_the_backups_failing_when_their_namespace_is_missing(
    client, database_past_grace, requester, backup_storage, capsys
):
    client.force_login(requester)

    page = client.get("/leases/forecast/").content.decode()

    assert f"Backups will fail: namespaces &quot;{backup_storage}&quot; not found" in page
    call_command("reclaim_leases", "--dry-run")
    assert f'error: back up: namespaces "{backup_storage}" not found' in capsys.readouterr().err

    call_command("ensure_backup_storage")  # what `make run` does on its control plane

    assert "Backups will fail" not in client.get("/leases/forecast/").content.decode()
    assert reclaim_pass(dry_run=True).errors == []
    assert Lease.objects.filter(state="grace").count() == 2  # the forecast and the dry run changed nothing


def test_it_predicts_that_the_pass_cannot_reach_the_cluster(client, database_past_grace, requester, settings, tmp_path):
    settings.LEASEHOLD_CLUSTER = "local"
    settings.LEASEHOLD_LOCAL_KUBECONFIG = str(tmp_path / "kubeconfig")
    cluster.reset_clients()
    client.force_login(requester)
    try:
        page = client.get("/leases/forecast/").content.decode()
    finally:
        cluster.reset_clients()

    assert "What the next pass will fail at" in page
    assert "The next pass cannot reach the cluster" in page and "does not exist" in page


def test_a_quiet_forecast_asks_the_cluster_nothing(client, atlas, requester, settings, tmp_path):
    settings.LEASEHOLD_CLUSTER = "local"
    settings.LEASEHOLD_LOCAL_KUBECONFIG = str(tmp_path / "kubeconfig")  # would fail, were it asked
    cluster.reset_clients()
    lease_open(resource=active_namespace(atlas, requester, name="later"))
    client.force_login(requester)
    try:
        page = client.get("/leases/forecast/").content.decode()
    finally:
        cluster.reset_clients()
    assert "What the next pass will fail at" not in page
    assert "Nothing is due: no expiry notice to send" in page
