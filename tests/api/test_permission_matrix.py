"""The permission matrix: every API endpoint and web page, asked by every persona, answers as this table
says; and whoever may not touch the atlas team's things (another team's member, an approver of another
group, anyone not logged in) changes nothing and reads nothing of them.

One world: team atlas with a request pending at its platform step, an active namespace with its lease
and a recorded object, a database and an app (with a release) in it, a reclaimed namespace, a failed
request, and frank's delegation to victor. No cluster: LEASEHOLD_CLUSTER points at a kubeconfig that
does not exist, so nothing here reaches a real one (an extension's re-stamp of the namespace's object
fails and is retried later, as designed; releasing the app has nothing to delete). Each call runs in a
savepoint that is rolled back, so every row starts from the same world whatever the others did.

A new URL fails `test_the_matrix_covers_every_url` until it has rows here.
"""

from __future__ import annotations

import copy
import datetime
import re
from dataclasses import dataclass, field

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import token_issue
from approvals.models import ApprovalStep, Delegation
from approvals.services import delegation_create
from leases.models import Lease
from leases.services.opening import lease_open
from provisioning import cluster
from provisioning.models import ManagedObject, Release
from requests_app.models import Resource, ResourceRequest
from requests_app.services import request_submit
from tests.conftest import namespace_body
from tests.factories import ResourceRequestFactory, UserFactory, active_child, active_namespace, app_template, team

pytestmark = pytest.mark.django_db

# --- the personas ---------------------------------------------------------------------------------------

#: Column order of the table below.
PERSONAS = ("requester", "teammate", "approver", "delegate", "other_approver", "outsider", "admin", "anonymous")
#: username and groups of each persona (None: not logged in).
ACCOUNTS = {
    "requester": ("dana", ["team-atlas"]),  # filed the pending request, owns the resources
    "teammate": ("tom", ["team-atlas"]),
    "approver": ("frank", ["platform-approvers"]),  # decides the pending (platform) step
    "delegate": ("victor", ["platform-approvers"]),  # frank's active delegate (delegates share the group)
    "other_approver": ("sam", ["security-approvers"]),  # an approver, but not of this step's group
    "outsider": ("olga", ["team-zephyr"]),  # a member of another team
    "admin": ("ada", ["leasehold-admins"]),
    "anonymous": None,
}
#: Those who may not touch atlas's things: every call they make must write nothing and show nothing of them.
STRANGERS = ("other_approver", "outsider", "anonymous")


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # {placeholders} name objects of the world
    expected: dict[str, int]
    api: bool
    body: dict | None = None
    # Tables the call may change for the caller's own account (logging out ends their token or session).
    own: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.method} {self.path}" + (f" {self.body}" if self.body else "")


def _row(api: bool, method: str, path: str, body: dict | None, statuses: str) -> Row:
    codes = [int(code) for code in statuses.split()]
    assert len(codes) == len(PERSONAS), f"{method} {path}: one status per persona"
    return Row(method, path, dict(zip(PERSONAS, codes, strict=True)), api, body, OWN_WRITES.get((method, path), ()))


def api(method: str, path: str, body: dict | None, statuses: str) -> Row:
    """A call to the API, with the persona's token (none for anonymous)."""
    return _row(True, method, path, body, statuses)


def web(method: str, path: str, body: dict | None, statuses: str) -> Row:
    """A page (form data for a POST), with the persona's session (none for anonymous)."""
    return _row(False, method, path, body, statuses)


# Logging out ends the caller's own token or session: the only writes a stranger's call may make.
OWN_WRITES = {("POST", "/api/v1/auth/logout/"): ("accounts_apitoken",), ("POST", "/logout/"): ("django_session",)}

NEW = namespace_body(name="fresh", justification="matrix: a new namespace")
NEW_FORM = {**NEW, "plan": "medium"}
DELEGATE = {"delegate": "paula", "starts_on": "{today}", "ends_on": "{today}"}
DELEGATE_FORM = {"op": "delegate", **DELEGATE}
REVOKE_FORM = {"op": "revoke", "delegation": "{delegation}"}
STEPS = {"steps": ["{step}"]}
STEPS_FORM = {"op": "approve-selected", **STEPS}
APPROVE, REJECT, DECIDE_FORM = {"comment": "ok"}, {"comment": "no"}, {"verdict": "approve"}
EXTEND = {"days": 7, "justification": "still needed"}
UPGRADE, UPGRADE_FORM, ROLLBACK = {"image_tag": "1.1"}, {"op": "upgrade", "image_tag": "1.1"}, {"release": 1}

# --- the matrix ----------------------------------------------------------------------------------------
# Columns: requester, teammate, approver, delegate, other_approver, outsider, admin, anonymous.
# Whatever carries an id of atlas's answers 404 to whoever may not see it (never 403: that would say it
# exists); an anonymous API call gets 401 and an anonymous page redirects to the login (302). A refusal
# the caller may know of is a 403 in the API, and a redirect with a message (302) on the web; a form
# error is the form again (200). Admins see everything but decide no step and file for no team they are
# not in.

MATRIX = [
    #   method  path                                                  body            req tea app del oth out adm anon
    api("GET",  "/api/v1/",                                           None,          "200 200 200 200 200 200 200 401"),
    api("GET",  "/api/v1/.json",                                      None,          "200 200 200 200 200 200 200 401"),
    api("POST", "/api/v1/auth/token/",                                {},            "400 400 400 400 400 400 400 400"),
    api("POST", "/api/v1/auth/logout/",                               None,          "204 204 204 204 204 204 204 401"),
    api("GET",  "/api/v1/me/",                                        None,          "200 200 200 200 200 200 200 401"),
    api("GET",  "/api/v1/catalog/",                                   None,          "200 200 200 200 200 200 200 401"),
    api("GET",  "/api/v1/clusters/",                                  None,          "200 200 200 200 200 200 200 401"),
    api("POST", "/api/v1/plan/",                                      NEW,           "200 200 400 400 400 400 400 401"),
    api("GET",  "/api/v1/requests/",                                  None,          "200 200 200 200 200 200 200 401"),
    api("GET",  "/api/v1/requests/?team=atlas",                       None,          "200 200 200 200 200 200 200 401"),
    api("POST", "/api/v1/requests/",                                  NEW,           "201 201 400 400 400 400 400 401"),
    api("GET",  "/api/v1/requests/{request}/",                        None,          "200 200 200 200 404 404 200 401"),
    api("GET",  "/api/v1/requests/{request}.json",                    None,          "200 200 200 200 404 404 200 401"),
    api("POST", "/api/v1/requests/{request}/cancel/",                 None,          "200 200 403 403 404 404 403 401"),
    api("POST", "/api/v1/requests/{failed}/retry/",                   None,          "403 403 404 404 404 404 200 401"),
    api("GET",  "/api/v1/requests/{request}/plan/",                   None,          "200 200 200 200 404 404 200 401"),
    api("GET",  "/api/v1/requests/{active_request}/progress/",        None,          "200 200 404 404 404 404 200 401"),
    api("GET",  "/api/v1/approvals/",                                 None,          "200 200 200 200 200 200 200 401"),
    api("POST", "/api/v1/approvals/approve-many/",                    STEPS,         "200 200 200 200 200 200 200 401"),
    api("GET",  "/api/v1/approvals/delegations/",                     None,          "200 200 200 200 200 200 200 401"),
    api("POST", "/api/v1/approvals/delegations/",                     DELEGATE,      "400 400 201 201 400 400 400 401"),
    api("POST", "/api/v1/approvals/delegations/{delegation}/revoke/", None,          "404 404 200 200 404 404 200 401"),
    api("POST", "/api/v1/approvals/{step}/approve/",                  APPROVE,       "403 403 200 200 404 404 403 401"),
    api("POST", "/api/v1/approvals/{step}/reject/",                   REJECT,        "403 403 200 200 404 404 403 401"),
    api("GET",  "/api/v1/resources/",                                 None,          "200 200 200 200 200 200 200 401"),
    api("GET",  "/api/v1/resources/?team=atlas",                      None,          "200 200 200 200 200 200 200 401"),
    api("GET",  "/api/v1/resources/{namespace}/",                     None,          "200 200 404 404 404 404 200 401"),
    api("GET",  "/api/v1/resources/{database}/",                      None,          "200 200 404 404 404 404 200 401"),
    api("GET",  "/api/v1/resources/{app}/",                           None,          "200 200 404 404 404 404 200 401"),
    api("POST", "/api/v1/resources/{namespace}/extend/",              EXTEND,        "200 200 404 404 404 404 200 401"),
    api("POST", "/api/v1/resources/{app}/release/",                   None,          "200 200 404 404 404 404 200 401"),
    api("POST", "/api/v1/resources/{app}/upgrade/",                   UPGRADE,       "202 202 404 404 404 404 202 401"),
    api("POST", "/api/v1/resources/{app}/rollback/",                  ROLLBACK,      "202 202 404 404 404 404 202 401"),
    api("POST", "/api/v1/resources/{reclaimed}/restore/",             None,          "202 202 404 404 404 404 400 401"),

    web("GET",  "/healthz",                                           None,          "200 200 200 200 200 200 200 200"),
    web("GET",  "/readyz",                                            None,          "200 200 200 200 200 200 200 200"),
    web("GET",  "/favicon.ico",                                       None,          "200 200 200 200 200 200 200 200"),
    web("GET",  "/",                                                  None,          "200 200 200 200 200 200 200 302"),
    web("GET",  "/login/",                                            None,          "200 200 200 200 200 200 200 200"),
    web("POST", "/logout/",                                           None,          "302 302 302 302 302 302 302 302"),
    web("GET",  "/catalog/",                                          None,          "200 200 200 200 200 200 200 302"),
    web("GET",  "/clusters/",                                         None,          "200 200 200 200 200 200 200 302"),
    web("GET",  "/requests/",                                         None,          "200 200 200 200 200 200 200 302"),
    web("GET",  "/requests/new/",                                     None,          "200 200 200 200 200 200 200 302"),
    web("POST", "/requests/new/",                                     NEW_FORM,      "302 302 200 200 200 200 200 302"),
    web("POST", "/requests/preview/",                                 NEW_FORM,      "200 200 200 200 200 200 200 302"),
    web("GET",  "/requests/{request}/",                               None,          "200 200 200 200 404 404 200 302"),
    web("POST", "/requests/{request}/cancel/",                        None,          "302 302 302 302 404 404 302 302"),
    # The objects page answers as GET /api/v1/requests/{id}/plan/ does (a login page instead of a 401).
    web("GET",  "/requests/{request}/objects/",                       None,          "200 200 200 200 404 404 200 302"),
    web("GET",  "/approvals/",                                        None,          "200 200 200 200 200 200 200 302"),
    web("POST", "/approvals/",                                        STEPS_FORM,    "302 302 302 302 302 302 302 302"),
    web("POST", "/approvals/",                                        DELEGATE_FORM, "200 200 302 302 200 200 200 302"),
    web("POST", "/approvals/",                                        REVOKE_FORM,   "404 404 302 302 404 404 302 302"),
    web("POST", "/approvals/{step}/decide/",                          DECIDE_FORM,   "302 302 302 302 404 404 302 302"),
    web("GET",  "/resources/",                                        None,          "200 200 200 200 200 200 200 302"),
    web("GET",  "/resources/{namespace}/",                            None,          "200 200 404 404 404 404 200 302"),
    web("GET",  "/resources/{database}/",                             None,          "200 200 404 404 404 404 200 302"),
    web("GET",  "/resources/{app}/",                                  None,          "200 200 404 404 404 404 200 302"),
    web("POST", "/resources/{app}/release/",                          None,          "302 302 404 404 404 404 302 302"),
    web("POST", "/resources/{namespace}/extend/",                     EXTEND,        "302 302 404 404 404 404 302 302"),
    web("POST", "/resources/{reclaimed}/restore/",                    None,          "302 302 404 404 404 404 302 302"),
    web("POST", "/resources/{app}/change/",                           UPGRADE_FORM,  "302 302 404 404 404 404 302 302"),
    web("GET",  "/leases/",                                           None,          "200 200 200 200 200 200 200 302"),
    web("GET",  "/leases/forecast/",                                  None,          "200 200 200 200 200 200 200 302"),
]  # fmt: skip

#: What the matrix does not cover, and why: Django admin has its own tests (tests/api/test_admin.py),
#: static files are files, and the schema and its docs page describe the API (tests/api/test_health_and_schema.py).
NOT_IN_MATRIX = ("admin/", "static/", "api/schema/", "api/docs/")


# --- the world -----------------------------------------------------------------------------------------


@dataclass
class World:
    users: dict[str, object]
    ids: dict[str, str]
    # What a stranger's answer must never contain: ids, names and words of atlas's things.
    secrets: list[str] = field(default_factory=list)


@pytest.fixture
def no_cluster(settings, tmp_path):
    """The local cluster mode with its kubeconfig missing: whatever must ask the cluster fails cleanly."""
    settings.LEASEHOLD_CLUSTER = "local"
    settings.LEASEHOLD_LOCAL_KUBECONFIG = str(tmp_path / "nowhere" / "kubeconfig")
    cluster.reset_clients()
    yield
    cluster.reset_clients()


@pytest.fixture
def world(settings, no_cluster) -> World:
    # Personas get their groups from the factory: Django's groups are the directory here (as in
    # tests/approvals), so a decision reads them rather than asking LDAP about accounts it does not hold.
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # nine accounts, fast
    atlas = team("atlas")
    team("zephyr")
    users = {}
    for persona, account in ACCOUNTS.items():
        if account is not None:
            username, groups = account
            is_admin = persona == "admin"
            users[persona] = UserFactory(username=username, groups=groups, is_staff=is_admin, is_superuser=is_admin)
    UserFactory(username="paula", groups=["platform-approvers"])  # whom the delegation rows delegate to
    dana = users["requester"]
    app_template("web")

    pending = request_submit(
        requester=dana,
        team="atlas",
        kind="namespace",
        name="pending",
        environment="dev",
        lease_days=14,
        justification="matrix-secret-justification",
        spec={"plan": "medium"},
    )
    step = ApprovalStep.objects.get(request=pending, state="pending")
    assert step.group == "platform-approvers"
    today = timezone.localdate()
    delegation = delegation_create(
        delegator=users["approver"],
        delegate=users["delegate"],
        starts_on=today,
        ends_on=today + datetime.timedelta(days=3),
        actor=users["approver"],
    )

    namespace = active_namespace(atlas, dana, name="checkout", plan="large")
    lease_open(resource=namespace)
    ManagedObject.objects.create(
        resource=namespace, api_version="v1", kind="Namespace", name="atlas-checkout", applied_at=timezone.now()
    )
    database = _child(
        namespace,
        "database",
        "orders",
        {"namespace": "checkout", "engine": "postgres", "version": "16", "storage": "1Gi", "plan": "small"},
    )
    app_spec = {"namespace": "checkout", "template": "web", "image_tag": "1.0", "replicas": 1}
    app = _child(namespace, "app", "shop", app_spec)
    Release.objects.create(
        resource=app, number=1, request=app.created_by_request, image_tag="1.0", spec=app_spec, manifests=[]
    )
    reclaimed = active_namespace(atlas, dana, name="old")
    Resource.objects.filter(pk=reclaimed.pk).update(state="reclaimed")
    ResourceRequest.objects.filter(pk=reclaimed.created_by_request_id).update(state="reclaimed")
    failed = ResourceRequestFactory(team=atlas, requester=dana, name="broken", state="failed")
    ids = {
        "request": pending.pk,
        "step": step.pk,
        "active_request": namespace.created_by_request_id,
        "namespace": namespace.pk,
        "database": database.pk,
        "app": app.pk,
        "reclaimed": reclaimed.pk,
        "failed": failed.pk,
    }
    secrets = [str(v) for v in ids.values()] + ["matrix-secret-justification", "atlas-checkout", "atlas-pending"]
    ids["delegation"] = delegation.pk
    ids["today"] = today.isoformat()
    return World(users=users, ids={k: str(v) for k, v in ids.items()}, secrets=secrets)


def _child(namespace: Resource, kind: str, name: str, spec: dict) -> Resource:
    """A database or app that runs in `namespace`, as the worker leaves it, with its lease."""
    resource = active_child(namespace, kind, name, spec)
    lease_open(resource=resource)
    return resource


# --- what a call may change ----------------------------------------------------------------------------


def _tables() -> list[str]:
    tables = {
        m._meta.db_table for m in apps.get_models(include_auto_created=True) if m._meta.managed and not m._meta.proxy
    }
    return sorted(tables)


def database_state() -> dict[str, object]:
    """The number of rows of every table (one query), and the states and dates that a call could
    change without adding a row."""
    tables = _tables()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {quote(t)})" for t in tables))
        state: dict[str, object] = dict(zip(tables, cursor.fetchone(), strict=True))
    state["request states"] = sorted(ResourceRequest.objects.values_list("pk", "state", "updated_at"))
    state["step states"] = sorted(ApprovalStep.objects.values_list("pk", "state", "pending_since"))
    state["resource states"] = sorted(Resource.objects.values_list("pk", "state", "lease_expires_at"))
    state["leases"] = sorted(Lease.objects.values_list("pk", "state", "expires_at", "extensions"))
    state["delegations"] = sorted(Delegation.objects.values_list("pk", "revoked_at", "ends_on"))
    return state


def changes(before: dict, after: dict, own: tuple[str, ...] = ()) -> list[str]:
    return [
        f"{key}: {before[key]!r} -> {after[key]!r}" if isinstance(before[key], int) else f"{key} changed"
        for key in before
        if key not in own and before[key] != after[key]
    ]


# --- the runs ------------------------------------------------------------------------------------------


def _fill(value, ids: dict[str, str]):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _clients(persona: str, world: World) -> tuple[APIClient, Client]:
    api_client, web_client = APIClient(), Client()
    api_client.raise_request_exception = web_client.raise_request_exception = False  # a 500 is an answer here
    user = world.users.get(persona)
    if user is not None:
        _, key = token_issue(user=user)
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        web_client.force_login(user)
    return api_client, web_client


def _call(row: Row, api_client: APIClient, web_client: Client, ids: dict[str, str]):
    path, body = _fill(row.path, ids), _fill(row.body, ids)
    if row.api:
        if row.method == "GET":
            return api_client.get(path)
        return api_client.post(path, body, format="json") if body is not None else api_client.post(path)
    cookies = copy.deepcopy(web_client.cookies)
    response = web_client.get(path) if row.method == "GET" else web_client.post(path, body or {})
    # The row's savepoint is rolled back (a logout's session comes back): so does the browser's cookie jar.
    web_client.cookies = cookies
    return response


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_endpoint_answers_each_persona_as_the_matrix_says(persona, world):
    api_client, web_client = _clients(persona, world)
    stranger = persona in STRANGERS
    wrong: list[str] = []
    for row in MATRIX:
        with transaction.atomic():
            before = database_state() if stranger else None
            response = _call(row, api_client, web_client, world.ids)
            expected = row.expected[persona]
            if response.status_code != expected:
                wrong.append(f"{row}: expected {expected}, got {response.status_code}")
            location = response.get("Location", "")
            if persona == "anonymous" and not row.api and response.status_code == 302 and location[:7] != "/login/":
                wrong.append(f"{row}: redirected to {location}, not to the login")
            if stranger:
                written = changes(before, database_state(), row.own)
                if written:
                    wrong.append(f"{row}: wrote {'; '.join(written)}")
                asked = f"{_fill(row.path, world.ids)} {_fill(row.body, world.ids)}"
                content = response.content.decode(errors="replace")
                shown = [s for s in world.secrets if s in content and s not in asked]
                if shown:
                    wrong.append(f"{row}: shows {', '.join(shown)}")
            transaction.set_rollback(True)
    assert not wrong, f"{persona} ({len(wrong)} off the matrix):\n  " + "\n  ".join(wrong)


def test_a_login_writes_only_its_session_token_and_access_log(client, world):
    """The matrix logs its personas in before it counts; this is what logging in itself writes."""
    before = database_state()
    response = client.post("/login/", {"username": "olga", "password": "leasehold"})
    assert response.status_code == 302 and response["Location"] == "/"
    response = APIClient().post("/api/v1/auth/token/", {"username": "olga", "password": "leasehold"}, format="json")
    assert response.status_code == 200
    after = database_state()
    assert sorted(changes(before, after)) == [
        "accounts_apitoken: 0 -> 1",
        "axes_accesslog: 0 -> 2",
        "django_session: 0 -> 1",
    ]


# --- every URL is in the matrix ------------------------------------------------------------------------


def _base(route: str) -> str:
    """A DRF format-suffix route (`requests/<pk>.json`) is its plain route's view: keyed as that route."""
    for suffix, plain in ((r"\.(?P<format>[a-z0-9]+)/?$", "/$"), ("<drf_format_suffix:format>", "")):
        if route.endswith(suffix):
            return route.removesuffix(suffix) + plain
    return route


def _routes(patterns, prefix: str = ""):
    for pattern in patterns:
        text = str(pattern.pattern)
        route = prefix + (text[1:] if prefix and text.startswith("^") else text)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.callback


def _methods(callback) -> set[str] | None:
    """The methods a DRF view answers (None for a plain Django view: any row for its URL covers it)."""
    if getattr(callback, "actions", None):
        return {m.upper() for m in callback.actions} - {"HEAD", "OPTIONS"}
    view = getattr(callback, "cls", None)
    if view is None:
        return None
    return {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)}


def test_the_matrix_covers_every_url():
    covered: dict[str, set[str]] = {}
    placeholder_ids = {
        name: "00000000-0000-0000-0000-000000000000" if name != "delegation" else "1"
        for name in re.findall(r"{(\w+)}", " ".join(r.path for r in MATRIX))
    }
    for row in MATRIX:
        route = _base(resolve(row.path.format(**placeholder_ids).partition("?")[0]).route)
        covered.setdefault(route, set()).add(row.method)
    missing: list[str] = []
    for route, callback in _routes(get_resolver().url_patterns):
        if route.startswith(NOT_IN_MATRIX):
            continue
        methods = _methods(callback)
        route = _base(route)
        if route not in covered:
            gap = f"{route} ({', '.join(sorted(methods)) if methods else 'any method'})"
        elif methods and methods - covered[route]:
            gap = f"{route} ({', '.join(sorted(methods - covered[route]))})"
        else:
            continue
        if gap not in missing:  # a route and its format-suffix twin
            missing.append(gap)
    assert not missing, "URLs the permission matrix does not cover; add their rows to MATRIX:\n  " + "\n  ".join(
        missing
    )
