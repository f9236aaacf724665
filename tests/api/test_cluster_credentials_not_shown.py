"""A registered cluster's credentials never appear where people look: the cluster list (to an admin and to a
developer), the OpenAPI schema, the web form, the admin's list, change and history pages, the audit trail
(rows and its admin page) and the admin's own log show at most the path of the mounted file, never what
it holds. The clusters are registered as an admin does it, through the admin, with real files behind them.
(That no credential reaches a log line or an error: tests/provisioning/test_cluster_credentials_not_logged.py.)"""

from __future__ import annotations

import base64
import uuid

import pytest
import yaml
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from requests_app.models import AuditEvent, Cluster

pytestmark = pytest.mark.django_db

TOKEN = f"lh-token-{uuid.uuid4().hex}"
KUBECONFIG_TOKEN = f"lh-kubeconfig-token-{uuid.uuid4().hex}"
CLIENT_KEY = f"lh-client-key-{uuid.uuid4().hex}"
SECRETS = [TOKEN, KUBECONFIG_TOKEN, CLIENT_KEY, base64.b64encode(CLIENT_KEY.encode()).decode()]


def shows_a_secret(text: str) -> list[str]:
    return [s for s in SECRETS if s in text or s[-16:] in text]


@pytest.fixture
def registered(client, admin_user, tmp_path):
    """Two clusters registered in the admin, one with a token file, one with a kubeconfig, then changed."""
    token_dir = tmp_path / "clusters" / "prod-b"
    token_dir.mkdir(parents=True)
    (token_dir / "token").write_text(TOKEN + "\n")
    (token_dir / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n")
    kubeconfig = tmp_path / "clusters" / "prod-c" / "kubeconfig"
    kubeconfig.parent.mkdir(parents=True)
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://api.prod-c.example.org:6443"}}],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "token": KUBECONFIG_TOKEN,
                            "client-key-data": base64.b64encode(CLIENT_KEY.encode()).decode(),
                        },
                    }
                ],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    client.force_login(admin_user)
    common = {"environments": ["dev", "prod"], "overcommit": "1.0", "accepting": "on", "timeout_seconds": "15"}
    bodies = {
        "prod-b": {
            "name": "prod-b",
            "api_server": "https://api.prod-b.example.org:6443",
            "auth": "token",
            "credentials_path": str(token_dir / "token"),
        },
        "prod-c": {"name": "prod-c", "api_server": "", "auth": "kubeconfig", "credentials_path": str(kubeconfig)},
    }
    for body in bodies.values():
        response = client.post(reverse("admin:requests_app_cluster_add"), {**common, **body})
        assert response.status_code == 302, response.content.decode()
    # A change: the token moves (a new Secret, mounted elsewhere), and prod-c stops taking requests.
    moved = tmp_path / "clusters" / "prod-b-2"
    moved.mkdir()
    (moved / "token").write_text(TOKEN)
    b, c = Cluster.objects.get(name="prod-b"), Cluster.objects.get(name="prod-c")
    response = client.post(
        reverse("admin:requests_app_cluster_change", args=[b.pk]),
        {**common, **bodies["prod-b"], "credentials_path": str(moved / "token")},
    )
    assert response.status_code == 302, response.content.decode()
    response = client.post(
        reverse("admin:requests_app_cluster_change", args=[c.pk]), {**common, **bodies["prod-c"], "accepting": ""}
    )
    assert response.status_code == 302, response.content.decode()
    return Cluster.objects.get(name="prod-b"), Cluster.objects.get(name="prod-c")


def test_the_api_and_its_schema_never_show_the_credentials_nor_their_path(registered, api, admin_user, requester):
    b, c = registered
    as_admin = api.as_(admin_user).get("/api/v1/clusters/")
    as_developer = api.as_(requester).get("/api/v1/clusters/")
    assert {x["name"] for x in as_admin.json()} >= {"prod-b", "prod-c"}
    assert "prod-b" in {x["name"] for x in as_developer.json()}  # prod-c takes no requests: not listed
    schema = api.as_(requester).get("/api/schema/")
    for response in (as_admin, as_developer, schema):
        assert response.status_code == 200
        text = response.content.decode()
        assert shows_a_secret(text) == []
        assert b.credentials_path not in text and c.credentials_path not in text


def test_the_web_form_offers_the_cluster_without_its_credentials(registered, client, requester):
    client.force_login(requester)
    form = client.get(reverse("request-new") + "?kind=namespace").content.decode()
    assert '<option value="prod-b">' in form
    assert shows_a_secret(form) == []
    assert not [c.credentials_path for c in registered if c.credentials_path in form]  # nor the paths


def test_the_admin_pages_show_the_path_at_most(registered, client, admin_user):
    b, c = registered
    client.force_login(admin_user)
    pages = {
        "list": client.get(reverse("admin:requests_app_cluster_changelist")),
        "audit list": client.get(reverse("admin:requests_app_auditevent_changelist")),
    }
    for cluster in (b, c):
        for page in ("change", "history"):
            pages[f"{cluster.name} {page}"] = client.get(
                reverse(f"admin:requests_app_cluster_{page}", args=[cluster.pk])
            )
    for name, response in pages.items():
        assert response.status_code == 200, name
        assert shows_a_secret(response.content.decode()) == [], name
    # The pages looked at are the right ones: the change page shows the path (what the admin set).
    assert f'value="{b.credentials_path}"' in pages["prod-b change"].content.decode()
    assert "Changed" in pages["prod-b history"].content.decode()


def test_the_audit_trail_and_the_admin_log_hold_the_path_at_most(registered):
    b, c = registered
    events = AuditEvent.objects.filter(target_type="cluster")
    assert {e.verb for e in events} == {"cluster_created", "cluster_changed"}
    rows = [" ".join(str(getattr(e, f.attname)) for f in AuditEvent._meta.concrete_fields) for e in events]
    rows += [str(e) for e in events]
    rows += [f"{e.object_repr} {e.change_message} {e.get_change_message()}" for e in LogEntry.objects.all()]
    assert rows and all(shows_a_secret(row) == [] for row in rows)
    moved = events.get(verb="cluster_changed", target_id=str(b.pk)).detail
    assert "credentials_path:" in moved and b.credentials_path in moved


@pytest.mark.parametrize(
    "url", ["https://leasehold:s3cret@api.dc-b.example.org:6443", "https://tok@api.dc-b.example.org"]
)
def test_an_api_server_url_with_credentials_in_it_is_a_form_error(client, admin_user, url):
    client.force_login(admin_user)
    body = {
        "name": "dc-b",
        "api_server": url,
        "auth": "token",
        "credentials_path": "/var/run/leasehold/clusters/dc-b/token",
        "environments": ["dev"],
        "overcommit": "1.0",
        "timeout_seconds": "15",
    }
    response = client.post(reverse("admin:requests_app_cluster_add"), body)
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors["api_server"])
    assert "No user or password in the URL" in errors
    assert not Cluster.objects.filter(name="dc-b").exists()
