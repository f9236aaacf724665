"""The second local control plane (`platform/services.sh up DIR k8s-b`) is a cluster of its own: what is
created on it does not exist on the first, its token is not valid there, and `services.sh stop`/`start`
take it down and bring it back with its objects. Groundwork for the multi-cluster tests (issue 16)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from tests.integration.conftest import namespace_gone, wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not os.environ.get("LEASEHOLD_K8S_B_SERVER"),
    reason="LEASEHOLD_K8S_B_SERVER is not set: the second control plane is not running (start the services "
    "with `platform/with-services.sh postgres redis ldap k8s k8s-b -- ...`)",
)


def cluster_b_client(server: str = "", ca_file: str = "") -> client.ApiClient:
    """An ApiClient with cluster B's admin token, on B's API server and CA unless others are given."""
    conf = client.Configuration()
    conf.host = server or os.environ["LEASEHOLD_K8S_B_SERVER"]
    conf.ssl_ca_cert = ca_file or os.environ["LEASEHOLD_K8S_B_CA_FILE"]
    conf.api_key = {"authorization": f"Bearer {os.environ['LEASEHOLD_K8S_B_ADMIN_TOKEN']}"}
    conf.retries = False
    return client.ApiClient(conf)


@pytest.fixture
def core_b():
    with cluster_b_client() as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def namespace_on_b(core_b, unique_name):
    """A namespace created on cluster B only (deleted afterwards)."""
    core_b.create_namespace({"metadata": {"name": unique_name, "labels": {"leasehold-test": "cluster-b"}}})
    yield unique_name
    if not namespace_gone(core_b, unique_name):  # the restart test deletes it itself
        core_b.delete_namespace(unique_name)


def services(action: str, service: str) -> None:
    services_dir = os.environ.get("LEASEHOLD_SERVICES_DIR")
    if not services_dir:
        pytest.skip("LEASEHOLD_SERVICES_DIR is not set: the services were not started by platform/with-services.sh")
    subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [str(ROOT / "platform/services.sh"), action, services_dir, service], check=True, timeout=180
    )


def reachable(core) -> bool:
    try:
        core.list_namespace(limit=1, _request_timeout=3)
    except HTTPError:  # refused: nothing listens on B's port
        return False
    return True


def test_a_namespace_on_cluster_b_does_not_exist_on_cluster_a(core, core_b, namespace_on_b):
    assert core_b.read_namespace(namespace_on_b).metadata.labels["leasehold-test"] == "cluster-b"
    assert namespace_gone(core, namespace_on_b)


def test_cluster_b_has_its_own_server_and_token(core):
    # B's admin token, sent to A's server (trusting A's CA): A does not know it.
    assert os.environ["LEASEHOLD_K8S_B_SERVER"] != os.environ["LEASEHOLD_K8S_SERVER"]
    assert os.environ["LEASEHOLD_K8S_B_KUBECONFIG"] != os.environ["KUBECONFIG"]
    with (
        cluster_b_client(server=os.environ["LEASEHOLD_K8S_SERVER"], ca_file=os.environ["LEASEHOLD_K8S_CA_FILE"]) as api,
        pytest.raises(ApiException) as refused,
    ):
        client.CoreV1Api(api).list_namespace(limit=1)
    assert refused.value.status == 401


def test_stopping_cluster_b_leaves_a_running_and_start_keeps_its_objects(core, core_b, namespace_on_b):
    services("stop", "k8s-b")
    try:
        assert not reachable(core_b), "cluster B still answers after `services.sh stop`"
        assert namespace_gone(core, namespace_on_b)  # A answers while B is down
    finally:
        services("start", "k8s-b")
    assert core_b.read_namespace(namespace_on_b).metadata.labels["leasehold-test"] == "cluster-b"
    # The controller manager is back too: its namespace controller finishes a deletion.
    core_b.delete_namespace(namespace_on_b)
    wait_for(lambda: namespace_gone(core_b, namespace_on_b), timeout=60, what="namespace deleted on cluster B")
