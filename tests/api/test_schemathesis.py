"""Schemathesis over `/api/schema/`: every operation, called as a member of team atlas with generated
requests — valid and invalid bodies, query strings, path parameters and unexpected methods — a bounded
and fixed number of them. No answer may be a 5xx (CONTRACT.md §3), and every documented answer must match
its documented schema.

The app runs in-process (WSGI) on the test database of `make test`. Three in four generated ids are
swapped for ids of seeded objects (a leased namespace with a database and an app, a reclaimed
namespace, pending and failed requests, another team's), so the calls reach the services behind the
404s. The cluster is the real API server of `make test`, reached as an identity that may do nothing
(the `default` ServiceAccount): what the fuzz sets off reaches the cluster as real calls, and the API
server refuses every write; a check after each operation asserts that no namespace of the fuzz exists.
Nothing else leaves the test database: its transaction is rolled back after each operation, so no
`on_commit` hook (Celery tasks, mail) ever runs. Hypothesis keeps no example database (only its
caches, in .hypothesis/).
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from dataclasses import dataclass, field

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import Client, override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from kubernetes import client, config
from schemathesis.config import SchemathesisConfig

from accounts.services import token_issue
from leases.services.opening import lease_open
from provisioning import cluster
from provisioning.models import Release
from provisioning.services.plan import resource_id_for
from requests_app.models import Resource, ResourceRequest
from requests_app.services import request_submit
from tests.conftest import require_env
from tests.factories import active_namespace, app_template
from tests.integration.conftest import token_kubeconfig

# Bounded and repeatable: a fixed seed, no shrinking, no example database (.hypothesis/examples).
# `max-examples` bounds the random (fuzzing) phase; the coverage phase adds a fixed set of boundary and
# invalid cases per operation (wrong types, missing fields, unexpected methods), and the examples phase
# the schema's own examples.
FUZZ_CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20261010,
        "generation": {"max-examples": 15, "no-shrink": True, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
    }
)

# needs the Kubernetes API server and PostgreSQL
pytestmark = pytest.mark.integration

# The schema as the service serves it. Loaded when the module is collected, over HTTPS so that the
# service's redirect of plain HTTP (SECURE_SSL_REDIRECT) does not apply; the calls below go to an app
# built inside each test, after tests/conftest.py turned that redirect off.
schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler(), config=FUZZ_CONFIG, base_url="https://localhost")

CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance]


@dataclass
class World:
    """What the fuzz calls as: a token of team atlas's member dana, and ids of seeded objects."""

    token: str
    ids: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def refused_kubeconfig(tmp_path_factory):
    """A kubeconfig for the real API server of `make test` as `system:serviceaccount:default:default`,
    which no RBAC rule grants anything: every call is answered, and every write refused (403)."""
    require_env("KUBECONFIG", "LEASEHOLD_K8S_SERVER", "LEASEHOLD_K8S_CA_FILE")
    admin = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    secrets = client.CoreV1Api(admin).list_namespaced_secret(
        "default", field_selector="type=kubernetes.io/service-account-token"
    )
    token = next(
        base64.b64decode(s.data["token"]).decode()
        for s in secrets.items
        if (s.metadata.annotations or {}).get("kubernetes.io/service-account.name") == "default"
    )
    path = tmp_path_factory.mktemp("fuzz") / "kubeconfig"
    token_kubeconfig(path, token)
    return path, admin


@pytest.fixture
def refusing_cluster(refused_kubeconfig, monkeypatch):
    path, admin = refused_kubeconfig
    monkeypatch.setenv("KUBECONFIG", str(path))
    cluster.reset_clients()
    with override_settings(LEASEHOLD_CLUSTER="kubeconfig"):
        yield admin
    cluster.reset_clients()


@pytest.fixture
def world(refusing_cluster, atlas, zephyr, requester, teammate, approver, outsider, unique_name):
    """Team atlas with a leased namespace holding a database and an app (two releases), a reclaimed
    namespace, a request waiting for approval and a failed one; team zephyr with a namespace and a request.

    Afterwards: none of these namespaces exists in the cluster."""
    require_env("DATABASE_URL")
    app_template("web")
    namespace = active_namespace(atlas, requester, name=unique_name)
    lease_open(resource=namespace)
    database = _child(
        namespace,
        requester,
        "database",
        "orders",
        {"engine": "postgres", "version": "16", "storage": "1Gi", "plan": "small"},
    )
    app = _child(namespace, requester, "app", "shop", {"template": "web", "image_tag": "1.4.2", "replicas": 1})
    upgrade = ResourceRequest.objects.create(
        action="upgrade",
        kind="app",
        team=atlas,
        requester=requester,
        name="shop",
        environment="dev",
        lease_days=14,
        spec=app.spec,
        frozen=app.created_by_request.frozen,
        parent=namespace,
        resource=app,
        state="active",
    )
    first = {**app.spec, "image_tag": "1.4.1"}
    Release.objects.create(
        resource=app, number=1, request=app.created_by_request, image_tag="1.4.1", spec=first, manifests=[]
    )
    Release.objects.create(resource=app, number=2, request=upgrade, image_tag="1.4.2", spec=app.spec, manifests=[])
    gone = active_namespace(atlas, requester, name=f"{unique_name}-old")
    Resource.objects.filter(pk=gone.pk).update(state="reclaimed")
    ResourceRequest.objects.filter(pk=gone.created_by_request_id).update(state="reclaimed")
    waiting = request_submit(
        requester=teammate,
        team="atlas",
        kind="namespace",
        name=f"{unique_name}-next",
        environment="prod",
        lease_days=14,
        justification="a prod namespace",
        spec={"plan": "medium"},
    )
    failed = ResourceRequest.objects.create(
        kind="namespace",
        team=atlas,
        requester=requester,
        name=f"{unique_name}-bad",
        environment="dev",
        lease_days=14,
        spec={"plan": "small"},
        state="failed",
    )
    theirs = active_namespace(zephyr, outsider, name=f"{unique_name}-z")
    lease_open(resource=theirs)
    resources = [namespace, database, app, gone, theirs]
    requests = [waiting, failed, namespace.created_by_request, app.created_by_request, theirs.created_by_request]
    _, key = token_issue(user=requester)
    namespaces = [r.namespace_name for r in resources if r.kind == "namespace"]
    yield World(
        token=key,
        ids={
            "resources": [str(r.pk) for r in resources],
            "apps": [str(app.pk)],
            "requests": [str(r.pk) for r in requests],
            "approvals": [str(s.pk) for s in waiting.approval_steps.all()],
        },
    )
    present = {ns.metadata.name for ns in client.CoreV1Api(refusing_cluster).list_namespace().items}
    assert present.isdisjoint(namespaces), "the fuzz wrote to the cluster"


def _child(namespace: Resource, owner, kind: str, name: str, spec: dict) -> Resource:
    """A database or app filed through the service (so it carries what filing freezes), as the worker
    leaves it once active, with its lease."""
    filed = request_submit(
        requester=owner,
        team=namespace.team.slug,
        kind=kind,
        name=name,
        environment="dev",
        lease_days=14,
        justification="seeded for the fuzz",
        spec={"namespace": str(namespace.pk), **spec},
    )
    child = Resource.objects.create(
        id=resource_id_for(filed),
        kind=kind,
        name=name,
        team=namespace.team,
        owner=owner,
        environment="dev",
        spec=filed.spec,
        lease_days=14,
        parent=namespace,
        created_by_request=filed,
        state="active",
        activated_at=timezone.now(),
    )
    ResourceRequest.objects.filter(pk=filed.pk).update(state="active", resource=child)
    lease_open(resource=child)
    return child


def aim_at_seeded_objects(case, world: World) -> None:
    """Swap three in four generated path ids for a seeded object's id of the kind the path names, and
    send the schema's example bodies (a valid extension, upgrade, rollback) to the object they fit: the
    leased namespace, or the app for an upgrade or rollback.

    Chosen by a checksum of the generated id and body (the coverage phase varies the body under one id),
    so a run repeats exactly."""
    collection = case.operation.path.split("/")[3]  # /api/v1/<collection>/...
    pool = world.ids.get(collection) or []
    if not pool or "id" not in (case.path_parameters or {}):
        return
    if case.meta is not None and case.meta.phase.name.value == "examples":
        app = case.operation.path.endswith(("/upgrade/", "/rollback/"))
        case.path_parameters["id"] = world.ids["apps"][0] if app else pool[0]
        return
    checksum = zlib.crc32(f"{case.path_parameters['id']!r} {case.body!r}".encode())
    if checksum % 4:
        case.path_parameters["id"] = pool[checksum % len(pool)]


@pytest.fixture
def app():
    """The service as a WSGI app, built now: after tests/conftest.py turned the HTTPS redirect off.

    As in Django's test client, the end of a request does not close the database connection, which
    holds the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), print_blob=False)
def test_generated_calls_get_no_5xx_and_only_documented_bodies(case, world, app):
    aim_at_seeded_objects(case, world)
    response = case.call(app=app, headers={"Authorization": f"Token {world.token}"})
    case.validate_response(response, checks=CHECKS)


# Request bodies that are JSON of the wrong shape, or not JSON at all, sent to every POST operation.
ODD_BODIES = {
    "an array": b"[]",
    "a string": b'"approve"',
    "a huge number": b"1e400",
    "null": b"null",
    "NaN": b'{"days": NaN, "release": Infinity}',
    "broken JSON": b'{"kind": ',
    "not UTF-8": b'{"comment": "\xff\xfe"}',
    "deep, but decodable": b'{"kind": "namespace", "team": "atlas", "name": "deep", "environment": "dev", "spec": '
    + b'{"plan": ' * 300
    + b'"small"'
    + b"}" * 300
    + b"}",
    "too deep to decode": b"[" * 100_000 + b"]" * 100_000,
    "every field of the wrong type": json.dumps(
        {
            name: {"$": [None]}
            for name in ("kind", "team", "name", "environment", "lease_days", "justification", "spec", "days")
            + ("image_tag", "release", "comment", "steps", "delegate", "starts_on", "ends_on", "username", "password")
        }
    ).encode(),
}


def _post_paths(world: World) -> list[str]:
    """Every POST operation of the schema, its path ids pointing at seeded objects whose body is read."""
    namespace, _, app, *_ = world.ids["resources"]
    paths = []
    for path, operations in schema.raw_schema["paths"].items():
        if "post" not in operations or path == "/api/v1/auth/logout/":  # it reads no body, and ends the token
            continue
        if path.startswith("/api/v1/resources/"):
            path = path.replace("{id}", app if path.endswith(("upgrade/", "rollback/")) else namespace)
        path = path.replace("{id}", (world.ids.get(path.split("/")[3]) or ["0"])[0]).replace("{delegation_id}", "1")
        paths.append(path)
    return paths


@pytest.mark.django_db
def test_odd_json_bodies_are_never_a_server_error(world):
    http = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {world.token}")
    paths = _post_paths(world)
    assert len(paths) >= 15
    failures = []
    for label, body in ODD_BODIES.items():
        for path in paths:
            response = http.post(path, data=body, content_type="application/json")
            if response.status_code >= 500:
                failures.append(f"{label} → POST {path}: {response.status_code}")
    assert failures == []
    assert http.get("/api/v1/me/").status_code == 200  # the bodies reached views that read them, not a 401
