import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from provisioning import renderers
from provisioning.renderers import (
    DATABASE_PLANS,
    POSTGRES_IMAGE,
    DatabaseSpec,
    database_connection,
    database_manifests,
    database_secret_name,
)
from requests_app import specs
from tests.unit.test_renderers import CTX

DATA = Path(__file__).resolve().parent.parent / "data"
CNPG_CRD = DATA / "cnpg-cluster-crd-subset.yaml"
K8S_1_20 = json.loads((DATA / "k8s-v1.20.0-strict-definitions.json").read_text())

CONTRACT_LABELS = {
    "app.kubernetes.io/managed-by": "leasehold",
    "leasehold.io/resource": CTX.resource_id,
    "leasehold.io/team": "atlas",
    "leasehold.io/environment": "dev",
}
CONTRACT_ANNOTATIONS = {
    "leasehold.io/request": CTX.request_id,
    "leasehold.io/owner": "dana",
    "leasehold.io/lease-expires": "2026-12-06T14:30:05Z",
}
PASSWORD = "pw-Zq8rT3xK9mW2vL7n"
DB = DatabaseSpec(name="orders", namespace="atlas-checkout", version="16", storage="10Gi", plan="small")
PROVIDERS = ["statefulset", "cloudnativepg"]
KUBERNETES_VERSIONS = ["1.33.0", kubernetes_validate.latest_version()]


def validate_on_kubernetes_1_20(manifest: dict) -> None:
    """Strict validation against the Kubernetes 1.20.0 OpenAPI schema (tests/data, from kubernetes-validate)."""
    root = K8S_1_20["roots"][f"{manifest['apiVersion']}/{manifest['kind']}"]
    schema = {"$ref": f"#/definitions/{root}", "definitions": K8S_1_20["definitions"]}
    jsonschema.Draft7Validator(schema).validate(manifest)


def _closed(schema):
    """Unknown fields are errors, as with the API server's strict field validation."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    open_ended = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and not open_ended:
        out["additionalProperties"] = False
    return out


def cnpg_cluster_validator() -> jsonschema.Draft7Validator:
    crd = yaml.safe_load(CNPG_CRD.read_text())
    v1 = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = _closed(v1["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def render(provider="statefulset", db=DB, password=PASSWORD, ctx=CTX):
    return database_manifests(db=db, password=password, ctx=ctx, provider=provider)


def by_kind(manifests):
    return {m["kind"]: m for m in manifests}


def identities(manifests):
    return [(m["apiVersion"], m["kind"], m["metadata"]["name"], m["metadata"]["namespace"]) for m in manifests]


def cluster(db=DB):
    return by_kind(render("cloudnativepg", db=db))["Cluster"]


# --- objects and metadata ------------------------------------------------------------------------------------


def test_a_statefulset_database_renders_its_secret_then_its_service_and_statefulset():
    assert identities(render()) == [
        ("v1", "Secret", "orders-credentials", "atlas-checkout"),
        ("v1", "Service", "orders", "atlas-checkout"),
        ("apps/v1", "StatefulSet", "orders", "atlas-checkout"),
    ]


def test_the_default_provider_is_the_statefulset():
    assert database_manifests(db=DB, password=PASSWORD, ctx=CTX) == render("statefulset")


def test_a_cloudnativepg_database_renders_its_secret_then_its_cluster():
    assert identities(render("cloudnativepg")) == [
        ("v1", "Secret", "orders-credentials", "atlas-checkout"),
        ("postgresql.cnpg.io/v1", "Cluster", "orders", "atlas-checkout"),
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_object_carries_the_contract_labels_and_annotations_and_the_database_labels(provider):
    for m in render(provider):
        assert m["metadata"]["labels"] == {
            **CONTRACT_LABELS,
            "app.kubernetes.io/name": "postgresql",
            "app.kubernetes.io/instance": "orders",
        }
        assert m["metadata"]["annotations"] == CONTRACT_ANNOTATIONS


def test_the_secret_name_is_the_database_name_with_a_credentials_suffix():
    assert database_secret_name("orders") == "orders-credentials"


# --- the Secret and the connection ------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "host"), [("statefulset", "orders"), ("cloudnativepg", "orders-rw")])
def test_the_secret_holds_cloudnativepg_app_secret_keys_with_the_providers_host(provider, host):
    secret = by_kind(render(provider))["Secret"]
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert "data" not in secret
    assert secret["stringData"] == {
        "username": "orders",
        "password": PASSWORD,
        "dbname": "orders",
        "host": f"{host}.atlas-checkout.svc",
        "port": "5432",
    }


@pytest.mark.parametrize(("provider", "host"), [("statefulset", "orders"), ("cloudnativepg", "orders-rw")])
def test_the_connection_names_host_port_database_user_and_secret_but_no_password(provider, host):
    conn = database_connection(DB, provider)
    assert conn == {
        "host": f"{host}.atlas-checkout.svc",
        "port": 5432,
        "database": "orders",
        "user": "orders",
        "secret_name": "orders-credentials",
    }


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_connection_agrees_with_what_the_secret_tells_an_app(provider):
    conn = database_connection(DB, provider)
    data = by_kind(render(provider))["Secret"]["stringData"]
    assert (data["host"], int(data["port"]), data["dbname"], data["username"]) == (
        conn["host"],
        conn["port"],
        conn["database"],
        conn["user"],
    )
    assert by_kind(render(provider))["Secret"]["metadata"]["name"] == conn["secret_name"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_password_appears_only_in_the_secrets_string_data(provider):
    manifests = copy.deepcopy(render(provider))
    secret = by_kind(manifests)["Secret"]
    assert secret["stringData"].pop("password") == PASSWORD
    assert PASSWORD not in json.dumps(manifests)
    assert PASSWORD not in json.dumps(database_connection(DB, provider))


# --- the StatefulSet provider ---------------------------------------------------------------------------


def statefulset(db=DB):
    return by_kind(render("statefulset", db=db))["StatefulSet"]


def postgres_container(db=DB):
    (container,) = statefulset(db)["spec"]["template"]["spec"]["containers"]
    return container


def test_the_service_is_a_clusterip_on_5432_tcp_selecting_exactly_the_statefulsets_pods():
    manifests = by_kind(render())
    service, sts = manifests["Service"], manifests["StatefulSet"]
    assert service["spec"]["type"] == "ClusterIP"
    assert "clusterIP" not in service["spec"]  # not headless
    assert service["spec"]["ports"] == [{"name": "postgres", "port": 5432, "targetPort": 5432, "protocol": "TCP"}]
    assert service["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_the_statefulset_runs_one_official_postgres_of_the_requested_version_behind_its_service():
    spec = statefulset(replace(DB, version="14"))["spec"]
    assert spec["replicas"] == 1
    assert spec["serviceName"] == "orders"
    assert POSTGRES_IMAGE == "docker.io/library/postgres"
    assert postgres_container(replace(DB, version="14"))["image"] == "docker.io/library/postgres:14"


def test_postgres_reads_user_password_and_database_from_the_secret_and_keeps_its_data_below_the_mount():
    container = postgres_container()
    env = {e["name"]: e for e in container["env"]}
    for name, key in [("POSTGRES_USER", "username"), ("POSTGRES_PASSWORD", "password"), ("POSTGRES_DB", "dbname")]:
        assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": {"name": "orders-credentials", "key": key}}}
    (mount,) = container["volumeMounts"]
    assert mount == {"name": "data", "mountPath": "/var/lib/postgresql/data"}
    assert env["PGDATA"]["value"].startswith(mount["mountPath"] + "/")
    assert all("value" not in e for e in container["env"] if e["name"] != "PGDATA")


def test_the_container_port_is_named_postgres():
    assert postgres_container()["ports"] == [{"name": "postgres", "containerPort": 5432, "protocol": "TCP"}]


def test_postgres_is_probed_with_pg_isready_for_the_databases_user_and_database():
    container = postgres_container()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[:2] == ["sh", "-c"]
        assert "pg_isready" in command[2]
        assert '-U "$POSTGRES_USER"' in command[2]
        assert '-d "$POSTGRES_DB"' in command[2]
        assert container[probe]["timeoutSeconds"] >= 1
    # The startup probe allows minutes for a first initdb before liveness may restart the container.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


@pytest.mark.parametrize("plan", sorted(DATABASE_PLANS))
def test_the_plan_sets_the_postgres_containers_requests_and_limits(plan):
    res = DATABASE_PLANS[plan]
    assert postgres_container(replace(DB, plan=plan))["resources"] == {
        "requests": {"cpu": res.cpu_request, "memory": res.memory_request},
        "limits": {"cpu": res.cpu_limit, "memory": res.memory_limit},
    }


def test_the_medium_plan_is_half_a_cpu_to_one_and_one_to_two_gibibytes():
    assert postgres_container(replace(DB, plan="medium"))["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }


def test_postgres_runs_as_the_unprivileged_postgres_user_with_no_capabilities():
    pod = statefulset()["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsUser": 999,
        "runAsGroup": 999,
        "fsGroup": 999,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert postgres_container()["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": False,
    }


def test_the_data_volume_is_a_readwriteonce_claim_of_the_requested_size():
    (claim,) = statefulset(replace(DB, storage="25Gi"))["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "25Gi"}}}


def test_the_claims_and_pods_carry_the_stable_contract_labels_but_no_lease_annotation():
    # The claims outlive the StatefulSet: the resource label lets the reclaimer find them. The lease expiry
    # changes at each extension; on a pod template it would restart the database, on a claim template it
    # would be an update the API server forbids.
    sts = statefulset()["spec"]
    (claim,) = sts["volumeClaimTemplates"]
    for meta in (claim["metadata"], sts["template"]["metadata"]):
        assert meta["labels"] == {**CONTRACT_LABELS, **sts["selector"]["matchLabels"]}
        assert "annotations" not in meta


def test_extending_the_lease_changes_no_immutable_or_pod_field_of_the_statefulset():
    later = replace(CTX, lease_expires=datetime(2027, 3, 1, tzinfo=UTC))
    before, after = statefulset(), by_kind(render(ctx=later))["StatefulSet"]
    assert before["metadata"]["annotations"] != after["metadata"]["annotations"]
    assert before["spec"] == after["spec"]


# --- the CloudNativePG provider -------------------------------------------------------------------------


def test_the_cluster_is_one_instance_of_the_cloudnativepg_image_of_the_requested_version():
    spec = cluster(replace(DB, version="15"))["spec"]
    assert spec["instances"] == 1
    assert spec["imageName"] == "ghcr.io/cloudnative-pg/postgresql:15"
    assert renderers.CNPG_IMAGE == "ghcr.io/cloudnative-pg/postgresql"


def test_the_cluster_asks_for_the_requested_storage_and_the_plans_resources():
    spec = cluster(replace(DB, storage="30Gi", plan="large"))["spec"]
    assert spec["storage"] == {"size": "30Gi"}
    assert spec["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}


def test_the_cluster_bootstraps_the_database_owned_by_its_user_with_the_rendered_secret():
    manifests = by_kind(render("cloudnativepg"))
    initdb = manifests["Cluster"]["spec"]["bootstrap"]["initdb"]
    assert initdb == {"database": "orders", "owner": "orders", "secret": {"name": "orders-credentials"}}
    # CloudNativePG takes the owner's credentials from a basic-auth Secret whose username is the owner.
    assert manifests["Secret"]["metadata"]["name"] == initdb["secret"]["name"]
    assert manifests["Secret"]["stringData"]["username"] == initdb["owner"]


@pytest.mark.parametrize("plan", sorted(DATABASE_PLANS))
@pytest.mark.parametrize("version", specs.POSTGRES_VERSIONS)
def test_every_cluster_validates_against_the_cloudnativepg_cluster_schema(version, plan):
    cnpg_cluster_validator().validate(cluster(replace(DB, version=version, plan=plan)))


@pytest.mark.parametrize(
    ("path", "value", "why"),
    [
        (("spec", "instances"), "1", "is not of type 'integer'"),
        (("spec", "instances"), 0, "less than the minimum"),
        (("spec", "storage", "size"), 10, "is not of type 'string'"),
        (("spec", "resources", "limits", "cpu"), "two", "does not match"),
        (("spec", "bootstrap", "initdb", "secret"), {}, "'name' is a required property"),
        (("spec", "bootstrap", "initdb", "ownr"), "orders", "Additional properties are not allowed"),
    ],
)
def test_the_cluster_schema_rejects_a_broken_cluster(path, value, why):
    broken = copy.deepcopy(cluster())
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = [e.message for e in cnpg_cluster_validator().iter_errors(broken)]
    assert errors
    assert any(why in message for message in errors), errors


def test_the_cluster_schema_requires_the_instances():
    broken = copy.deepcopy(cluster())
    del broken["spec"]["instances"]
    with pytest.raises(jsonschema.ValidationError, match="'instances' is a required property"):
        cnpg_cluster_validator().validate(broken)


# --- bad input, determinism, schemas ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "provider", "message"),
    [
        ({"version": "12"}, "statefulset", "unsupported PostgreSQL version"),
        ({"plan": "huge"}, "statefulset", "unknown database plan"),
        ({"storage": "ten gigs"}, "cloudnativepg", "invalid storage quantity"),
        ({}, "rds", "unknown database provider"),
    ],
)
def test_a_spec_the_renderer_cannot_honour_is_refused(change, provider, message):
    with pytest.raises(ValueError, match=message):
        render(provider, db=replace(DB, **change))


def test_an_unknown_provider_has_no_connection_either():
    with pytest.raises(ValueError, match="unknown database provider"):
        database_connection(DB, "rds")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rendering_is_deterministic(provider):
    assert json.dumps(render(provider)) == json.dumps(render(provider, db=replace(DB)))


def test_the_plans_and_versions_are_the_request_specs_own():
    assert renderers.ComputeResources is specs.ComputeResources
    assert renderers.DATABASE_PLANS is specs.DATABASE_PLANS
    assert renderers.POSTGRES_VERSIONS == ("13", "14", "15", "16", "17")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_core_manifests_validate_strictly_against_current_schemas(provider, version):
    core = [m for m in render(provider) if m["kind"] != "Cluster"]
    assert core
    for m in core:
        kubernetes_validate.validate(m, version, strict=True)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_core_manifests_validate_strictly_against_kubernetes_1_20(provider):
    core = [m for m in render(provider) if m["kind"] != "Cluster"]
    for m in core:
        validate_on_kubernetes_1_20(m)


def test_the_1_20_schema_rejects_a_field_that_kubernetes_1_20_does_not_have():
    # persistentVolumeClaimRetentionPolicy came with Kubernetes 1.23: valid today, unknown to 1.20.
    sts = copy.deepcopy(statefulset())
    sts["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete", "whenScaled": "Retain"}
    kubernetes_validate.validate(sts, kubernetes_validate.latest_version(), strict=True)
    with pytest.raises(jsonschema.ValidationError, match="persistentVolumeClaimRetentionPolicy"):
        validate_on_kubernetes_1_20(sts)
