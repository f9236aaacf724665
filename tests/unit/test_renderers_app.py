import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime

import kubernetes_validate
import pytest

from provisioning.renderers import (
    AppSpec,
    AppTemplateSpec,
    ComputeResources,
    DatabaseBinding,
    app_manifests,
    database_manifests,
)
from tests.unit.test_renderers_database import (
    CONTRACT_ANNOTATIONS,
    CONTRACT_LABELS,
    CTX,
    DB,
    KUBERNETES_VERSIONS,
    PASSWORD,
    by_kind,
    identities,
    validate_on_kubernetes_1_20,
)

TEMPLATE = AppTemplateSpec(
    slug="web",
    image_repository="registry.example.org/platform/web",
    container_port=8080,
    health_path="/healthz",
    default_env={"LOG_LEVEL": "info", "GREETING": "hello"},
    resources=ComputeResources("100m", "500m", "128Mi", "256Mi"),
    accepts_database=True,
)
APP = AppSpec(
    name="shop",
    namespace="atlas-checkout",
    template=TEMPLATE,
    image_tag="1.4.2",
    replicas=2,
    env={"LOG_LEVEL": "debug", "FEATURE_X": "on"},
)
BOUND = replace(APP, database=DatabaseBinding(secret_name="orders-credentials"))
WITH_INGRESS = replace(BOUND, host="shop.apps.example.org", ingress_class="nginx")
PG_KEYS = {"PGHOST": "host", "PGPORT": "port", "PGDATABASE": "dbname", "PGUSER": "username", "PGPASSWORD": "password"}


def render(app=APP, ctx=CTX):
    return app_manifests(app=app, ctx=ctx)


def deployment(app=APP, ctx=CTX):
    return by_kind(render(app, ctx))["Deployment"]


def container(app=APP):
    (only,) = deployment(app)["spec"]["template"]["spec"]["containers"]
    return only


def env(app=APP):
    return container(app)["env"]


# --- objects and metadata ------------------------------------------------------------------------------------


def test_an_app_renders_a_deployment_and_a_service_of_its_name():
    assert identities(render()) == [
        ("apps/v1", "Deployment", "shop", "atlas-checkout"),
        ("v1", "Service", "shop", "atlas-checkout"),
    ]


def test_an_app_with_a_host_also_renders_an_ingress_last():
    assert [m["kind"] for m in render(WITH_INGRESS)] == ["Deployment", "Service", "Ingress"]


@pytest.mark.parametrize("app", [APP, WITH_INGRESS], ids=["plain", "with-ingress"])
def test_every_object_carries_the_contract_labels_and_annotations_and_the_app_labels(app):
    for m in render(app):
        assert m["metadata"]["labels"] == {
            **CONTRACT_LABELS,
            "app.kubernetes.io/name": "shop",
            "app.kubernetes.io/instance": "shop",
        }
        assert m["metadata"]["annotations"] == CONTRACT_ANNOTATIONS


# --- the Deployment -----------------------------------------------------------------------------------------


def test_the_deployment_runs_the_requested_replicas_of_the_templates_image_at_the_tag():
    spec = deployment(replace(APP, replicas=3))["spec"]
    assert spec["replicas"] == 3
    assert container()["image"] == "registry.example.org/platform/web:1.4.2"


def test_the_deployment_selects_its_pods_by_name_and_instance():
    spec = deployment()["spec"]
    selector = {"app.kubernetes.io/name": "shop", "app.kubernetes.io/instance": "shop"}
    assert spec["selector"] == {"matchLabels": selector}
    assert spec["template"]["metadata"]["labels"] == {**CONTRACT_LABELS, **selector}


def test_the_container_port_is_named_http():
    assert container()["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_readiness_and_liveness_probe_the_health_path_on_the_http_port():
    c = container(replace(APP, template=replace(TEMPLATE, health_path="/-/ready")))
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/-/ready", "port": "http", "scheme": "HTTP"}
        assert c[probe]["periodSeconds"] > 0
        assert c[probe]["timeoutSeconds"] > 0
    # Liveness waits longer than readiness, so a slow start is not restarted before it could be ready.
    assert c["livenessProbe"]["initialDelaySeconds"] > c["readinessProbe"]["initialDelaySeconds"]


def test_the_templates_resources_become_the_containers_requests_and_limits():
    app = replace(APP, template=replace(TEMPLATE, resources=ComputeResources("250m", "1", "512Mi", "1Gi")))
    assert container(app)["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }


def test_the_pod_runs_as_non_root_with_no_capabilities_and_no_service_account_token():
    pod = deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False
    assert container()["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": False,
    }


# --- environment ---------------------------------------------------------------------------------------------


def test_user_env_overrides_the_templates_defaults_and_the_list_is_sorted_by_name():
    assert env() == [
        {"name": "FEATURE_X", "value": "on"},
        {"name": "GREETING", "value": "hello"},
        {"name": "LOG_LEVEL", "value": "debug"},
    ]


def test_without_user_env_the_templates_defaults_apply():
    assert env(replace(APP, env={})) == [
        {"name": "GREETING", "value": "hello"},
        {"name": "LOG_LEVEL", "value": "info"},
    ]


def test_without_a_binding_no_database_variables_are_added():
    assert not any(e["name"].startswith("PG") for e in env())


def test_a_binding_adds_the_libpq_variables_each_from_a_key_of_the_databases_secret():
    bound = {e["name"]: e for e in env(BOUND)}
    for name, key in PG_KEYS.items():
        assert bound[name] == {"name": name, "valueFrom": {"secretKeyRef": {"name": "orders-credentials", "key": key}}}
    names = [e["name"] for e in env(BOUND)]
    assert names == sorted(names)
    assert {"FEATURE_X", "GREETING", "LOG_LEVEL"} <= set(names)


def test_the_binding_wins_over_user_and_template_values_of_the_same_names():
    app = replace(
        BOUND,
        env={"PGPASSWORD": "literal-password", "PGHOST": "elsewhere.example.org"},
        template=replace(TEMPLATE, default_env={"PGUSER": "postgres", "PGPORT": "6543"}),
    )
    entries = env(app)
    for name, key in PG_KEYS.items():
        (entry,) = [e for e in entries if e["name"] == name]
        assert entry == {"name": name, "valueFrom": {"secretKeyRef": {"name": "orders-credentials", "key": key}}}
    rendered = json.dumps(render(app))
    assert "literal-password" not in rendered
    assert "elsewhere.example.org" not in rendered


def test_the_bound_keys_are_keys_the_database_secret_has():
    (secret, *_) = database_manifests(db=DB, password=PASSWORD, ctx=CTX)
    refs = [e["valueFrom"]["secretKeyRef"] for e in env(BOUND) if "valueFrom" in e]
    assert {r["name"] for r in refs} == {secret["metadata"]["name"]}
    assert {r["key"] for r in refs} <= set(secret["stringData"])


def test_the_database_password_never_reaches_an_apps_manifests():
    assert PASSWORD not in json.dumps(render(WITH_INGRESS))
    assert not [e for e in env(BOUND) if e["name"] == "PGPASSWORD" and "value" in e]


def test_a_template_that_takes_no_database_refuses_a_binding():
    app = replace(BOUND, template=replace(TEMPLATE, accepts_database=False))
    with pytest.raises(ValueError, match="does not accept a database"):
        render(app)


def test_a_negative_replica_count_is_refused():
    with pytest.raises(ValueError, match="replicas"):
        render(replace(APP, replicas=-1))


# --- config hash -----------------------------------------------------------------------------------------------


def config_hash(app=APP, ctx=CTX):
    return deployment(app, ctx)["spec"]["template"]["metadata"]["annotations"]["leasehold.io/config-hash"]


def test_the_config_hash_is_the_sha256_of_the_rendered_container():
    canonical = json.dumps(container(), sort_keys=True, separators=(",", ":"))
    assert config_hash() == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    "changed",
    [
        replace(APP, env={**APP.env, "FEATURE_X": "off"}),
        replace(APP, image_tag="1.4.3"),
        BOUND,
        replace(APP, template=replace(TEMPLATE, resources=ComputeResources("100m", "1", "128Mi", "256Mi"))),
    ],
    ids=["env", "image", "binding", "resources"],
)
def test_a_config_change_changes_the_hash_so_the_pods_roll(changed):
    assert config_hash(changed) != config_hash()


def test_scaling_or_extending_the_lease_leaves_the_pod_template_alone():
    later = replace(CTX, lease_expires=datetime(2027, 3, 1, tzinfo=UTC))
    template = deployment()["spec"]["template"]
    assert deployment(replace(APP, replicas=5))["spec"]["template"] == template
    assert deployment(ctx=later)["spec"]["template"] == template


# --- Service and Ingress -------------------------------------------------------------------------------------


def test_the_service_is_a_clusterip_on_port_80_to_the_http_port_selecting_the_pods():
    manifests = by_kind(render())
    spec = manifests["Service"]["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert spec["selector"] == manifests["Deployment"]["spec"]["selector"]["matchLabels"]


def test_an_apps_service_never_selects_a_databases_pods():
    db_pods = by_kind(database_manifests(db=DB, password=PASSWORD, ctx=CTX))["StatefulSet"]["spec"]["template"]
    selector = by_kind(render())["Service"]["spec"]["selector"]
    assert not selector.items() <= db_pods["metadata"]["labels"].items()


def test_without_a_host_there_is_no_ingress():
    assert "Ingress" not in by_kind(render(replace(APP, ingress_class="nginx")))


def test_the_ingress_routes_everything_on_the_host_to_the_service_port_80():
    spec = by_kind(render(WITH_INGRESS))["Ingress"]["spec"]
    assert spec["rules"] == [
        {
            "host": "shop.apps.example.org",
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "shop", "port": {"number": 80}}},
                    }
                ]
            },
        }
    ]
    assert spec["ingressClassName"] == "nginx"


def test_the_ingress_names_a_class_only_when_one_is_given():
    spec = by_kind(render(replace(WITH_INGRESS, ingress_class=None)))["Ingress"]["spec"]
    assert "ingressClassName" not in spec


# --- determinism and schemas -----------------------------------------------------------------------------------


def test_rendering_is_deterministic_whatever_order_the_env_was_given_in():
    reordered = replace(
        WITH_INGRESS,
        env=dict(reversed(list(WITH_INGRESS.env.items()))),
        template=replace(TEMPLATE, default_env=dict(reversed(list(TEMPLATE.default_env.items())))),
    )
    assert list(reordered.env) != list(WITH_INGRESS.env)
    assert json.dumps(render(reordered)) == json.dumps(render(WITH_INGRESS))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("app", [APP, BOUND, WITH_INGRESS, replace(WITH_INGRESS, ingress_class=None)])
def test_manifests_validate_strictly_against_current_schemas(app, version):
    for m in render(app):
        kubernetes_validate.validate(m, version, strict=True)


@pytest.mark.parametrize("app", [APP, BOUND, WITH_INGRESS, replace(WITH_INGRESS, ingress_class=None)])
def test_manifests_validate_strictly_against_kubernetes_1_20(app):
    for m in render(app):
        validate_on_kubernetes_1_20(m)
